"""Alert workers against the real broker and Elasticsearch, delivering to real local receivers."""

from __future__ import annotations

import email
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from elasticsearch import Elasticsearch

from alerts.history import HistoryStore
from alerts.rules import Rule, RuleSet
from alerts.stage import AlertWorker
from newsflow.kafka_io import ensure_topics, make_producer
from newsflow.replay import replay_dead_letters
from newsflow.schemas import AlertEvent, DeadLetter, EnrichedArticle
from newsflow.settings import AlertSettings, ElasticsearchSettings, KafkaSettings, LoopSettings
from tests.test_alerts_support import Receiver, enriched, free_port, webhook_receiver
from tests.test_loop_kafka import read_all

pytestmark = [pytest.mark.alerts, pytest.mark.kafka, pytest.mark.elasticsearch]

LOOP = LoopSettings(batch_size=20, linger_s=0.2, max_attempts=3, backoff_initial_s=0.05, backoff_max_s=0.3)
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Env:
    kafka: KafkaSettings
    es_settings: ElasticsearchSettings
    es: Elasticsearch
    alert: AlertSettings

    def rules(self, *rules: dict[str, Any]) -> None:
        RuleSet(rules=tuple(Rule.model_validate(r) for r in rules)).save(self.alert.rules)

    def produce(self, articles: Sequence[EnrichedArticle]) -> None:
        producer = make_producer(self.kafka)
        for article in articles:
            producer.send(
                self.kafka.topic("enriched"), key=article.key(), value=article.model_dump_json().encode()
            )
        producer.flush()
        producer.close()

    def worker(self, idle_s: float = 3.0) -> AlertWorker:
        """Run one worker until the stream is idle; returns it (closed) for its stats."""
        producer = make_producer(self.kafka)
        worker = AlertWorker(self.kafka, self.es_settings, LOOP, self.alert, producer)
        try:
            worker.run(threading.Event(), idle_exit_s=idle_s)
        finally:
            producer.close()
        return worker

    def history(self) -> list[dict[str, Any]]:
        return HistoryStore(self.es, self.alert.history_index).search(
            {"term": {"doc_type": "alert"}}, size=500
        )

    def read(self, role: str) -> list[bytes]:
        return read_all(self.kafka, role)


@pytest.fixture
def env(kafka_settings, es_settings, es_client, tmp_path) -> Env:
    ensure_topics(kafka_settings, ("enriched", "dead-letters", "alerts"))
    alert = AlertSettings(
        rules=tmp_path / "rules.yaml",
        history_index=f"{es_settings.index_prefix}-alerts",  # removed with the test's indices
        backoff_initial_s=0.05,
        backoff_max_s=0.2,
        timeout_s=3.0,
        lease_s=30.0,
        digest_check_s=3600.0,
    )
    return Env(kafka_settings, es_settings, es_client, alert)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as r:
        yield r


def migration_story(story: str, base: int) -> list[EnrichedArticle]:
    return [
        enriched(
            base + i,
            f"Migration talks, as told by {source}",
            "Ministers argued about migration.",
            source=source,
            story=story,
        )
        for i, source in enumerate(("bbc.co.uk", "dw.com", "theguardian.com"))
    ]


def test_a_migration_rule_fires_once_for_a_story_published_by_three_sources(env: Env, receiver: Receiver):
    env.rules({"id": "migration", "query": "migration", "channels": [receiver.url + "/hook"]})
    copies = migration_story("story-1", 0)
    env.produce([*copies, enriched(9, "Football results", "A draw.", story="story-9")])
    worker = env.worker()

    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    payload = request.body
    assert payload["rule_id"] == "migration"
    assert payload["mode"] == "single"
    assert request.headers["Idempotency-Key"] == payload["alert_id"]
    assert payload["items"][0]["title"] in {a.article.title for a in copies}
    assert payload["items"][0]["matched_terms"] == ["migration"]
    (doc,) = env.history()
    assert doc["status"] == "delivered"
    assert doc["item_count"] == 3  # the two later copies joined the alert: visible in the history
    assert {i["source"] for i in doc["items"]} == {"bbc.co.uk", "dw.com", "theguardian.com"}
    assert worker.loop.stats.as_dict()["skipped"] == {"no_rule_matched": 1}

    # Revisions: a copy that still matches does not re-alert; a story that newly matches does.
    revised = copies[0].model_copy(update={"article": copies[0].article.model_copy(update={"revision": 2})})
    newly = enriched(20, "Migration, updated", "Now about migration.", story="story-9")
    env.produce(
        [revised, newly.model_copy(update={"article": newly.article.model_copy(update={"revision": 2})})]
    )
    env.worker()
    assert [r.body["items"][0]["story_id"] for r in receiver.requests] == ["story-1", "story-9"]


def test_an_entity_rule_matches_surface_variants_of_one_person(env: Env, receiver: Receiver):
    env.rules({"id": "blinken", "entities": ["Antony Blinken"], "channels": [receiver.url]})
    env.produce(
        [
            enriched(
                1, "a", story="s1", entities=(("Antony Blinken", "person", ("Antony Blinken", "Blinken")),)
            ),
            enriched(2, "b", story="s2", entities=(("Blinken", "person", ("Blinken",)),)),
            enriched(3, "c", story="s3", entities=(("antony blinken", "person", ()),)),
            enriched(4, "d", story="s4", entities=(("Tony Blair", "person", ("Blair",)),)),
        ]
    )
    env.worker()
    assert sorted(r.body["items"][0]["story_id"] for r in receiver.requests) == ["s1", "s2", "s3"]
    assert all(r.body["items"][0]["matched_terms"] == ["entity:Antony Blinken"] for r in receiver.requests)


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


def test_webhook_slack_smtp_and_kafka_channels_deliver(env: Env, receiver: Receiver):
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        env.alert = env.alert.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": controller.port})
        env.rules(
            {
                "id": "eu",
                "name": "EU desk",
                "query": "summit",
                "channels": [
                    receiver.url + "/json",
                    "slack:" + receiver.url + "/slack",
                    "mailto:desk@example.org",
                    "kafka",
                ],
            }
        )
        article = enriched(1, "EU summit ends", "The summit ended late.", source="dw.com", story="s1")
        env.produce([article])
        env.worker()
    finally:
        controller.stop()
    by_path = {r.path: r.body for r in receiver.requests}
    assert set(by_path) == {"/json", "/slack"}
    assert by_path["/json"]["items"][0]["url"] == article.article.url
    assert by_path["/json"]["subject"] == "[newsflow] EU desk: EU summit ends"
    assert "dw.com · 2026-11-20T12:01+00:00" in by_path["/json"]["text"]
    assert set(by_path["/slack"]) == {"text"}
    assert article.article.url in by_path["/slack"]["text"]
    (mail,) = mailbox.messages
    assert mail["Subject"] == "[newsflow] EU desk: EU summit ends"
    assert mail["To"] == "desk@example.org"
    assert mail["Message-ID"] == f"<{by_path['/json']['alert_id']}@newsflow.alerts>"
    assert "matched: summit" in mail.get_payload()
    (event,) = [AlertEvent.model_validate_json(v) for v in env.read("alerts")]
    assert event.alert_id == by_path["/json"]["alert_id"]
    (doc,) = env.history()
    assert sorted(d["status"] for d in doc["deliveries"]) == ["delivered"] * 4


def test_a_failing_channel_is_dead_lettered_never_blocks_and_replays(env: Env, receiver: Receiver):
    with webhook_receiver() as broken:
        broken.status = 503
        env.rules(
            {"id": "broken", "query": "storm", "channels": [broken.url]},
            {"id": "fine", "query": "storm OR flood", "channels": [receiver.url]},
        )
        env.produce([enriched(1, "Storm warning", story="s1"), enriched(2, "Flood warning", story="s2")])
        env.worker()
        assert len(broken.requests) == 3  # delivery_attempts, with backoff
        assert len(receiver.requests) == 2  # the other rule and the next article went on
        (letter,) = [DeadLetter.model_validate_json(v) for v in env.read("dead-letters")]
        assert (letter.stage, letter.reason, letter.attempts) == ("alert", "delivery_failed_webhook", 3)
        failed = [d for d in env.history() if d["rule_id"] == "broken"]
        assert [d["status"] for d in failed] == ["failed"]

        broken.status = 200
        assert replay_dead_letters(env.kafka, stage="alert")["replayed"] == 1
        env.worker()
        assert len(broken.acknowledged()) == 1
        assert len(receiver.requests) == 2  # the replay re-sent only the failed channel
        assert {d["status"] for d in env.history()} == {"delivered"}


def test_digests_throttling_and_quiet_hours_hold_alerts_then_send_one_digest(env: Env, receiver: Receiver):
    now = datetime.now(UTC)
    quiet = {
        "start": (now - timedelta(hours=1)).time().isoformat("minutes"),
        "end": (now + timedelta(hours=1)).time().isoformat("minutes"),
    }
    env.rules(
        {"id": "hourly", "query": "election", "digest": "hourly", "channels": [receiver.url + "/hourly"]},
        {
            "id": "throttled",
            "query": "election",
            "throttle": {"max_alerts": 1, "window": "1d"},
            "channels": [receiver.url + "/throttled"],
        },
        {"id": "quiet", "query": "election", "quiet_hours": quiet, "channels": [receiver.url + "/quiet"]},
    )
    env.produce([enriched(i, f"Election news {i}", story=f"s{i}") for i in range(3)])
    env.worker()
    assert [r.path for r in receiver.requests] == ["/throttled"]  # the first within the window
    held = Counter((d["rule_id"], d["hold_reason"]) for d in env.history() if d["status"] == "held")
    assert held == {("hourly", "hourly"): 3, ("throttled", "throttle"): 2, ("quiet", "quiet_hours"): 3}

    producer = make_producer(env.kafka)
    worker = AlertWorker(env.kafka, env.es_settings, LOOP, env.alert, producer)
    try:
        next_hour = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        assert worker.flusher.flush(now + (next_hour - now) / 2) == 0  # nothing due before the hour
        assert worker.flusher.flush(now + timedelta(days=2)) == 3
        assert worker.flusher.flush(now + timedelta(days=3)) == 0  # sent once
    finally:
        worker.close()
        producer.close()
    digests = {r.path: r.body for r in receiver.requests if r.body["mode"] == "digest"}
    assert {path: len(body["items"]) for path, body in digests.items()} == {
        "/hourly": 3,
        "/throttled": 2,
        "/quiet": 3,
    }
    assert {d["status"] for d in env.history()} == {"delivered", "digested"}


def test_two_workers_in_one_group_never_send_the_same_alert_twice(env: Env, receiver: Receiver):
    env.rules({"id": "migration", "query": "migration", "channels": [receiver.url]})
    articles = [a for n in range(30) for a in migration_story(f"story-{n}", n * 10)]
    env.produce(articles)
    threads = [threading.Thread(target=env.worker, kwargs={"idle_s": 6.0}) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = Counter(r.body["alert_id"] for r in receiver.requests)
    assert len(ids) == 30
    assert set(ids.values()) == {1}
    assert sorted(d["item_count"] for d in env.history()) == [3] * 30


def test_killing_an_alert_worker_mid_stream_loses_and_duplicates_nothing(env: Env, receiver: Receiver):
    env.rules({"id": "migration", "query": "migration", "channels": [receiver.url]})
    env.produce([a for n in range(20) for a in migration_story(f"story-{n}", n * 10)])
    environment = {
        **os.environ,
        "NEWSFLOW_KAFKA_TOPIC_PREFIX": env.kafka.topic_prefix,
        "NEWSFLOW_KAFKA_GROUP_PREFIX": env.kafka.group_prefix,
        "NEWSFLOW_KAFKA_PARTITIONS": str(env.kafka.partitions),
        "NEWSFLOW_ALERT_RULES": str(env.alert.rules),
        "NEWSFLOW_ALERT_HISTORY_INDEX": env.alert.history_index,
        "NEWSFLOW_ALERT_LEASE_S": "3",
        "NEWSFLOW_LOOP_BATCH_SIZE": "5",
        "NEWSFLOW_LOOP_BACKOFF_INITIAL_S": "0.2",
        "NEWSFLOW_LOOP_BACKOFF_MAX_S": "1",
    }
    command = [sys.executable, "-m", "newsflow.cli", "alerts", "run"]
    first = subprocess.Popen(command, env=environment, cwd=ROOT, stderr=subprocess.DEVNULL)
    killed = threading.Event()

    def kill_on_fifth(request: Any) -> bool:
        if killed.is_set() or len(receiver.requests) < 4:
            return True
        first.send_signal(signal.SIGKILL)  # while the worker waits for this answer: outcome unknown to it
        first.wait()
        killed.set()
        return False

    receiver.on_request = kill_on_fifth
    assert killed.wait(120), "the first worker never reached its fifth alert"
    second = subprocess.Popen(command, env=environment, cwd=ROOT, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while len(receiver.acknowledged()) < 20 and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(3)  # a duplicate would arrive now, if the second worker were to send one
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(60)
    acknowledged = Counter(r.body["alert_id"] for r in receiver.acknowledged())
    assert len(acknowledged) == 20  # nothing lost
    assert set(acknowledged.values()) == {1}  # nothing acknowledged twice
    unanswered = [r.body["alert_id"] for r in receiver.requests if not r.acknowledged]
    assert len(unanswered) == 1 and unanswered[0] in acknowledged  # the one in flight was re-sent
    assert {d["status"] for d in env.history()} == {"delivered"}


def test_the_pipeline_runs_alerts_as_its_alert_stage(env: Env, receiver: Receiver, monkeypatch):
    from newsflow.pipeline import PipelineRunner, PipelineSettings

    monkeypatch.setenv("NEWSFLOW_ALERT_RULES", str(env.alert.rules))
    monkeypatch.setenv("NEWSFLOW_ALERT_HISTORY_INDEX", env.alert.history_index)
    env.rules({"id": "migration", "query": "migration", "channels": [receiver.url]})
    env.produce(migration_story("s1", 0))
    runner = PipelineRunner(
        PipelineSettings(kafka=env.kafka, elasticsearch=env.es_settings, loop=LOOP), ["alert"]
    )
    runner.run(threading.Event(), idle_exit_s=3)
    assert runner.errors == {}
    assert len(receiver.requests) == 1
    assert runner.stats["alert"].as_dict()["ok"] == {"written": 3}
