"""Wiring: settings -> clients -> stages -> loops. The only module that knows every stage.

Each stage runs in its own thread here (``newsflow run``, the demo) or alone in its own process
(``newsflow ingest|enrich|index``); production runs one container per stage (``deploy/``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from kafka import KafkaProducer

from alerts.stage import alert_loop
from enrich.stage import build_stage
from index.client import make_client
from index.setup import setup as setup_index
from index.stage import ElasticsearchBulkSink, IndexStage
from ingest.http import HttpClient
from ingest.rawstore import RawStore
from ingest.service import PollerService
from ingest.stage import FetchStage
from newsflow.kafka_io import ensure_topics, make_consumer, make_producer
from newsflow.loop import Activity, DeadLetterWriter, KafkaSink, StageStats, StreamLoop
from newsflow.settings import (
    AlertSettings,
    ElasticsearchSettings,
    EnrichSettings,
    HttpSettings,
    IngestSettings,
    KafkaSettings,
    LoopSettings,
    SpacySettings,
)

log = logging.getLogger(__name__)

TOPIC_ROLES = ("links", "articles", "enriched", "dead-letters")
STAGES = ("poll", "fetch", "enrich", "index", "alert")


@dataclass(frozen=True)
class PipelineSettings:
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    elasticsearch: ElasticsearchSettings = field(default_factory=ElasticsearchSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    spacy: SpacySettings = field(default_factory=SpacySettings)
    enrich: EnrichSettings = field(default_factory=EnrichSettings)
    loop: LoopSettings = field(default_factory=LoopSettings)
    alert: AlertSettings = field(default_factory=AlertSettings)


def _dead_letters(settings: PipelineSettings, producer: KafkaProducer, stage: str) -> DeadLetterWriter:
    return DeadLetterWriter(producer, settings.kafka.topic("dead-letters"), stage)


def fetch_loop(settings: PipelineSettings, producer: KafkaProducer, stats: StageStats) -> StreamLoop:  # type: ignore[type-arg]  # stage types vary per loop
    stage = FetchStage(HttpClient(settings.http), RawStore.from_settings(settings.ingest))
    consumer = make_consumer(settings.kafka, settings.loop, "fetch", [settings.kafka.topic("links")])
    sink: KafkaSink[object] = KafkaSink(producer, settings.kafka.topic("articles"))
    return StreamLoop(stage, consumer, sink, _dead_letters(settings, producer, "fetch"), settings.loop, stats)


def enrich_loop(settings: PipelineSettings, producer: KafkaProducer, stats: StageStats) -> StreamLoop:  # type: ignore[type-arg]  # stage types vary per loop
    stage = build_stage(settings.enrich, settings.spacy)
    consumer = make_consumer(settings.kafka, settings.loop, "enrich", [settings.kafka.topic("articles")])
    sink: KafkaSink[object] = KafkaSink(producer, settings.kafka.topic("enriched"))
    return StreamLoop(
        stage, consumer, sink, _dead_letters(settings, producer, "enrich"), settings.loop, stats
    )


def index_loop(settings: PipelineSettings, producer: KafkaProducer, stats: StageStats) -> StreamLoop:  # type: ignore[type-arg]  # stage types vary per loop
    es = make_client(settings.elasticsearch)
    setup_index(es, settings.elasticsearch)
    consumer = make_consumer(settings.kafka, settings.loop, "index", [settings.kafka.topic("enriched")])
    sink = ElasticsearchBulkSink(es, settings.elasticsearch.alias)
    return StreamLoop(
        IndexStage(), consumer, sink, _dead_letters(settings, producer, "index"), settings.loop, stats
    )


LOOP_BUILDERS: dict[str, Callable[[PipelineSettings, KafkaProducer, StageStats], StreamLoop]] = {  # type: ignore[type-arg]  # stage types vary per loop
    "fetch": fetch_loop,
    "enrich": enrich_loop,
    "index": index_loop,
    "alert": alert_loop,
}


class PipelineRunner:
    """Runs a set of stages in threads sharing one producer, until stopped or idle."""

    def __init__(self, settings: PipelineSettings, stages: Iterable[str]) -> None:
        self.settings = settings
        self.stages = tuple(stages)
        unknown = set(self.stages) - set(STAGES)
        if unknown:
            raise ValueError(f"unknown stages: {sorted(unknown)}")
        self.stats = {name: StageStats(name) for name in self.stages}
        self.errors: dict[str, BaseException] = {}
        self.activity = Activity()

    def run(self, stop: threading.Event, idle_exit_s: float | None = None, poll_once: bool = False) -> None:
        ensure_topics(self.settings.kafka, TOPIC_ROLES)
        producer = make_producer(self.settings.kafka)
        threads: list[threading.Thread] = []
        try:
            for name in self.stages:
                target = self._target(name, producer, stop, idle_exit_s, poll_once)
                thread = threading.Thread(target=target, name=f"stage-{name}", daemon=True)
                thread.start()
                threads.append(thread)
            for thread in threads:
                while thread.is_alive():
                    thread.join(timeout=0.5)
                    if self.errors:
                        stop.set()
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
            producer.close(timeout=10)

    def _target(
        self,
        name: str,
        producer: KafkaProducer,
        stop: threading.Event,
        idle_exit_s: float | None,
        poll_once: bool,
    ) -> Callable[[], None]:
        def run() -> None:
            try:
                if name == "poll":
                    settings = self.settings
                    with self.activity.working():  # polling counts as work until a --once pass ends
                        PollerService(
                            settings.kafka, settings.http, settings.ingest, producer, self.stats[name]
                        ).run(stop, once=poll_once)
                    return
                loop = LOOP_BUILDERS[name](self.settings, producer, self.stats[name])
                try:
                    loop.run(stop, idle_exit_s=idle_exit_s, activity=self.activity)
                finally:
                    loop.consumer.close()
            except BaseException as exc:
                log.exception("stage crashed", extra={"stage": name})
                self.errors[name] = exc
                raise

        return run
