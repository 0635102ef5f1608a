"""Dead-letter inspection and replay.

Replay is stateless: it reads the dead-letter topic from the start to its current end, resends
each matching letter's original bytes to the topic it came from, and leaves the dead-letter topic
untouched. Downstream writes are idempotent, so replaying twice is harmless; a letter that fails
again comes back as a new dead letter with a newer ``failed_at`` (filter with ``since``).
"""

from __future__ import annotations

import base64
from collections import Counter
from datetime import datetime
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from pydantic import ValidationError

from newsflow.kafka_io import client_config, make_producer
from newsflow.schemas import DeadLetter
from newsflow.settings import KafkaSettings


def _read_all(settings: KafkaSettings, topic: str) -> list[DeadLetter | bytes]:
    consumer = KafkaConsumer(**client_config(settings), enable_auto_commit=False, group_id=None)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        letters: list[DeadLetter | bytes] = []
        while any(consumer.position(tp) < end[tp] for tp in tps):
            for batch in consumer.poll(timeout_ms=1000).values():
                for record in batch:
                    try:
                        letters.append(DeadLetter.model_validate_json(record.value))
                    except ValidationError:
                        letters.append(record.value)
        return letters
    finally:
        consumer.close()


def replay_dead_letters(
    settings: KafkaSettings,
    stage: str | None = None,
    reason: str | None = None,
    since: datetime | None = None,
    limit: int | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Resend matching letters (or with ``dry_run`` only count them); returns a report."""
    letters = _read_all(settings, settings.topic("dead-letters"))
    valid = [letter for letter in letters if isinstance(letter, DeadLetter)]
    by_reason = Counter(f"{letter.stage}/{letter.reason}" for letter in valid)
    selected = [
        letter
        for letter in valid
        if (stage is None or letter.stage == stage)
        and (reason is None or letter.reason == reason)
        and (since is None or letter.failed_at >= since)
    ][:limit]
    replayed = 0
    if not dry_run and selected:
        producer = make_producer(settings)
        try:
            futures = []
            for letter in selected:
                value = (
                    base64.b64decode(letter.original_value)
                    if letter.encoding == "base64"
                    else letter.original_value.encode("utf-8")
                )
                futures.append(producer.send(letter.source_topic, key=letter.original_key or "", value=value))
            producer.flush(timeout=60)
            for future in futures:
                future.get(timeout=60)
            replayed = len(futures)
        finally:
            producer.close(timeout=10)
    return {
        "dead_letters": len(letters),
        "unreadable": len(letters) - len(valid),
        "by_stage_reason": dict(sorted(by_reason.items())),
        "selected": len(selected),
        "replayed": replayed,
        "sample": [
            {
                "stage": letter.stage,
                "reason": letter.reason,
                "source_topic": letter.source_topic,
                "detail": letter.detail[:200],
            }
            for letter in selected[:5]
        ],
    }
