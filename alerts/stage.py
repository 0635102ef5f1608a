"""The alert stage: consumes ``newsflow.enriched`` next to the indexer and matches every article.

``AlertStage.process`` is pure (article in, matched rules out); claiming, delivery and history
happen in ``AlertSink`` before the loop commits offsets. ``AlertWorker`` is one alert process:
the stream loop plus a timer that sends due digests while the stream is idle.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import yaml
from kafka import KafkaProducer
from pydantic import ValidationError

from alerts.channels import Senders
from alerts.delivery import AlertSink, Deliverer, DigestFlusher, Match, Matches
from alerts.history import HistoryStore
from alerts.matcher import RuleMatcher
from alerts.rules import Rule, RuleSet
from index.client import make_client
from newsflow.errors import SkipMessage
from newsflow.kafka_io import ensure_topics, make_consumer
from newsflow.loop import DeadLetterWriter, StageStats, StreamLoop
from newsflow.schemas import AlertEvent, EnrichedArticle
from newsflow.settings import AlertSettings, ElasticsearchSettings, KafkaSettings, LoopSettings

if TYPE_CHECKING:
    from newsflow.pipeline import PipelineSettings

log = logging.getLogger(__name__)


class RuleBook:
    """The rules file, re-read when it changes (``newsflow alerts add`` takes effect without a restart)."""

    def __init__(self, path: Path, check_every_s: float = 2.0) -> None:
        self.path = path
        self.check_every_s = check_every_s
        self._version: tuple[int, int, int] | None = None
        self._checked = 0.0
        self.by_id: Mapping[str, Rule] = {}
        self.matcher = RuleMatcher([])
        self.refresh(force=True)

    def refresh(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._checked < self.check_every_s:
            return
        self._checked = time.monotonic()
        # Inode, mtime and size: an atomic rename (our own save, most editors) always changes the inode.
        stat = self.path.stat() if self.path.exists() else None
        version = (stat.st_ino, stat.st_mtime_ns, stat.st_size) if stat else None
        if force or version != self._version:
            try:
                rules = RuleSet.load(self.path).rules
            except (ValidationError, ValueError, yaml.YAMLError):
                if force:  # at start-up a broken file is an error; later, an edit in progress
                    raise
                log.exception(
                    "rules file invalid; keeping the previous rules", extra={"path": str(self.path)}
                )
                self._version = version
                return
            self.by_id, self.matcher, self._version = {r.id: r for r in rules}, RuleMatcher(rules), version

    def rules(self) -> Mapping[str, Rule]:
        return self.by_id


class AlertStage:
    name = "alert"
    input_model = EnrichedArticle

    def __init__(self, book: RuleBook) -> None:
        self.book = book

    def process(self, message: EnrichedArticle) -> Matches:
        self.book.refresh()
        found = self.book.matcher.match(message)
        if not found:
            raise SkipMessage("no_rule_matched")
        return Matches(message, tuple(Match(rule.id, terms) for rule, terms in found))


class AlertWorker:
    """One alert worker; any number of them share the work through one consumer group."""

    def __init__(
        self,
        kafka: KafkaSettings,
        elasticsearch: ElasticsearchSettings,
        loop: LoopSettings,
        settings: AlertSettings,
        producer: KafkaProducer,
        stats: StageStats | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.worker_id = worker_id or uuid.uuid4().hex[:12]
        ensure_topics(kafka, ("enriched", "dead-letters", AlertEvent.topic_role))
        self.es = make_client(elasticsearch)
        self.store = HistoryStore(self.es, settings.history_index)
        self.store.ensure()
        self.book = RuleBook(settings.rules)
        self.http = httpx.Client(timeout=settings.timeout_s, follow_redirects=False)
        senders = Senders(settings, kafka, producer, self.http)
        deliverer = Deliverer(self.store, senders, producer, kafka.topic("dead-letters"), settings)
        self.flusher = DigestFlusher(
            self.store,
            self.book.rules,
            deliverer,
            kafka.topic(AlertEvent.topic_role),
            settings,
            self.worker_id,
        )
        sink = AlertSink(
            self.store,
            self.book.rules,
            deliverer,
            kafka.topic("enriched"),
            settings,
            self.worker_id,
            after_batch=self.flusher.maybe_flush,
        )
        consumer = make_consumer(kafka, loop, "alert", [kafka.topic("enriched")])
        dead_letters = DeadLetterWriter(producer, kafka.topic("dead-letters"), "alert")
        self.loop: StreamLoop[EnrichedArticle, Matches] = StreamLoop(
            AlertStage(self.book), consumer, sink, dead_letters, loop, stats
        )

    def run(self, stop: threading.Event, idle_exit_s: float | None = None) -> None:
        timer = threading.Thread(target=self._digests, args=(stop,), name="alert-digests", daemon=True)
        timer.start()
        try:
            self.loop.run(stop, idle_exit_s=idle_exit_s)
        finally:
            stop.set()
            timer.join(timeout=30)
            self.close()

    def _digests(self, stop: threading.Event) -> None:
        while not stop.wait(self.settings.digest_check_s):
            self.flusher.maybe_flush()

    def close(self) -> None:
        self.loop.consumer.close()
        self.http.close()
        self.es.close()


def alert_loop(
    settings: PipelineSettings, producer: KafkaProducer, stats: StageStats
) -> StreamLoop[EnrichedArticle, Matches]:
    """The ``alert`` stage of ``newsflow run``: digests are flushed after batches (and by ``alerts run``)."""
    worker = AlertWorker(
        settings.kafka, settings.elasticsearch, settings.loop, settings.alert, producer, stats
    )
    return worker.loop
