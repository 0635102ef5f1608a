"""The stream loop against the real broker: fates of messages, retries, dead letters, commits."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from newsflow.errors import PermanentError, RetryableError, SkipMessage, StageError
from newsflow.kafka_io import client_config, ensure_topics, make_consumer, make_producer
from newsflow.loop import DeadLetterWriter, KafkaSink, StreamLoop
from newsflow.replay import replay_dead_letters
from newsflow.schemas import DeadLetter, LinkMessage
from newsflow.settings import KafkaSettings, LoopSettings

pytestmark = pytest.mark.kafka

FAST = LoopSettings(batch_size=50, linger_s=0.2, max_attempts=3, backoff_initial_s=0.01, backoff_max_s=0.05)


def link(n: int, title: str) -> LinkMessage:
    return LinkMessage(
        url=f"https://example.org/{n}",
        canonical_url=f"https://example.org/{n}",
        article_id=f"{n:032d}",
        feed_url="https://example.org/feed",
        publisher="example.org",
        title=title,
        discovered_at=datetime.now(UTC),
    )


class ScriptedStage:
    """Behaves by title: ok, skip, poison, boom (a bug), flaky (fails twice, then works)."""

    name = "scripted"
    input_model = LinkMessage

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def process(self, message: LinkMessage) -> LinkMessage:
        self.calls[message.article_id] += 1
        title = message.title or ""
        if title == "skip":
            raise SkipMessage("not_interesting")
        if title == "poison":
            raise PermanentError("poison_content", "cannot be handled")
        if title == "boom":
            raise ValueError("a bug in the stage")
        if title == "flaky" and self.calls[message.article_id] < 3:
            raise RetryableError("flaky_upstream")
        return message.model_copy(update={"title": title.upper()})


class ScriptedBatchStage(ScriptedStage):
    """The same behaviour through ``process_batch``, the path spaCy-backed stages take."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def process_batch(self, messages: Sequence[LinkMessage]) -> list[LinkMessage | BaseException]:
        self.batches.append(len(messages))
        results: list[LinkMessage | BaseException] = []
        for message in messages:
            try:
                results.append(self.process(message))
            except Exception as exc:  # noqa: BLE001 - returned, as the batch protocol asks
                results.append(exc)
        return results


def produce(settings: KafkaSettings, role: str, values: Sequence[bytes]) -> None:
    producer = make_producer(settings)
    for i, value in enumerate(values):
        producer.send(settings.topic(role), key=f"k{i}", value=value)
    producer.flush()
    producer.close()


def read_all(settings: KafkaSettings, role: str) -> list[bytes]:
    consumer = KafkaConsumer(**client_config(settings), group_id=None, enable_auto_commit=False)
    partitions = consumer.partitions_for_topic(settings.topic(role)) or set()
    tps = [TopicPartition(settings.topic(role), p) for p in partitions]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    end = consumer.end_offsets(tps)
    values: list[bytes] = []
    while any(consumer.position(tp) < end[tp] for tp in tps):
        for batch in consumer.poll(timeout_ms=1000).values():
            values.extend(record.value for record in batch)
    consumer.close()
    return values


def build_loop(
    settings: KafkaSettings, stage: ScriptedStage, sink: object | None = None
) -> StreamLoop[LinkMessage, LinkMessage]:
    producer = make_producer(settings)
    consumer = make_consumer(settings, FAST, "scripted", [settings.topic("in")])
    return StreamLoop(
        stage,
        consumer,
        sink or KafkaSink(producer, settings.topic("out")),  # type: ignore[arg-type]
        DeadLetterWriter(producer, settings.topic("dead-letters"), stage.name),
        FAST,
    )


def run_until_idle(loop: StreamLoop[LinkMessage, LinkMessage], idle_s: float = 3.0) -> None:
    loop.run(threading.Event(), idle_exit_s=idle_s)
    loop.consumer.close()


@pytest.fixture
def topics(kafka_settings: KafkaSettings) -> KafkaSettings:
    ensure_topics(kafka_settings, ("in", "out", "dead-letters"))
    return kafka_settings


@pytest.mark.parametrize("stage_type", [ScriptedStage, ScriptedBatchStage])
def test_each_message_meets_its_fate_and_the_stream_goes_on(
    topics: KafkaSettings, stage_type: type[ScriptedStage]
):
    titles = ["ok", "skip", "poison", "boom", "flaky", "ok"]
    values = [link(i, t).model_dump_json().encode() for i, t in enumerate(titles)]
    values.insert(3, b"\xff not even json")
    produce(topics, "in", values)

    stage = stage_type()
    loop = build_loop(topics, stage)
    run_until_idle(loop)
    if isinstance(stage, ScriptedBatchStage):
        assert sum(stage.batches) == 6  # every valid message went through process_batch

    out = [LinkMessage.model_validate_json(v) for v in read_all(topics, "out")]
    assert sorted(m.title or "" for m in out) == ["FLAKY", "OK", "OK"]
    letters = [DeadLetter.model_validate_json(v) for v in read_all(topics, "dead-letters")]
    assert sorted(letter.reason for letter in letters) == [
        "invalid_message",
        "poison_content",
        "unhandled_ValueError",
    ]
    garbage = next(letter for letter in letters if letter.reason == "invalid_message")
    assert garbage.encoding == "base64"  # the original bytes survive, even when they are not UTF-8
    poison = next(letter for letter in letters if letter.reason == "poison_content")
    assert poison.source_topic == topics.topic("in")
    assert LinkMessage.model_validate_json(poison.original_value).title == "poison"
    stats = loop.stats.as_dict()
    assert stats["ok"] == {"written": 3}
    assert stats["skipped"] == {"not_interesting": 1}
    assert sum(stats["dead_lettered"].values()) == 3
    assert stats["retried"] == {"recovered": 1}


def test_offsets_are_committed_only_after_the_write(topics: KafkaSettings):
    produce(topics, "in", [link(i, "ok").model_dump_json().encode() for i in range(5)])

    class Crash(Exception):
        pass

    class CrashingSink:
        def write(self, results: Sequence[object]) -> Sequence[tuple[int, StageError]]:
            raise Crash("process dies before the write is acknowledged")

    crashing = build_loop(topics, ScriptedStage(), CrashingSink())
    with pytest.raises(Crash):
        crashing.run(threading.Event(), idle_exit_s=3)
    crashing.consumer.close()

    # A new consumer in the same group gets every message again: nothing was committed.
    loop = build_loop(topics, ScriptedStage())
    run_until_idle(loop)
    assert len(read_all(topics, "out")) == 5
    # And after a clean run everything is committed: a third run sees nothing.
    again = build_loop(topics, ScriptedStage())
    run_until_idle(again, idle_s=2)
    assert again.stats.total() == 0


def test_an_unavailable_sink_rewinds_and_loses_nothing(topics: KafkaSettings):
    produce(topics, "in", [link(i, "ok").model_dump_json().encode() for i in range(4)])
    producer = make_producer(topics)
    real: KafkaSink[LinkMessage] = KafkaSink(producer, topics.topic("out"))

    class FlakySink:
        failures = 4  # more than max_attempts: the whole batch is rewound once

        def write(self, results: Sequence[LinkMessage]) -> Sequence[tuple[int, StageError]]:
            if self.failures:
                self.failures -= 1
                raise RetryableError("sink_down")
            return real.write(results)

    loop = build_loop(topics, ScriptedStage(), FlakySink())
    run_until_idle(loop)
    out = [LinkMessage.model_validate_json(v) for v in read_all(topics, "out")]
    assert sorted(m.article_id for m in out) == sorted(f"{i:032d}" for i in range(4))


def test_dead_letters_replay_to_their_source_topic(topics: KafkaSettings):
    produce(topics, "in", [link(1, "poison").model_dump_json().encode()])
    run_until_idle(build_loop(topics, ScriptedStage()))
    assert len(read_all(topics, "dead-letters")) == 1

    listed = replay_dead_letters(topics, dry_run=True)
    assert listed["selected"] == 1
    assert listed["replayed"] == 0
    assert listed["by_stage_reason"] == {"scripted/poison_content": 1}

    report = replay_dead_letters(topics, stage="scripted")
    assert report["replayed"] == 1
    replayed = [LinkMessage.model_validate_json(v) for v in read_all(topics, "in")]
    assert [m.title for m in replayed] == ["poison", "poison"]
    assert replay_dead_letters(topics, stage="other", dry_run=True)["selected"] == 0


def test_producer_and_topics_are_created_idempotently(kafka_settings: KafkaSettings):
    first = ensure_topics(kafka_settings, ("a", "b"))
    second = ensure_topics(kafka_settings, ("a", "b"))
    assert sorted(first) == [kafka_settings.topic("a"), kafka_settings.topic("b")]
    assert second == []
    assert isinstance(make_producer(kafka_settings), KafkaProducer)
