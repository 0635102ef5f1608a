"""The poller as a long-running service: every due feed of this replica, concurrently on one
asyncio event loop, links produced to Kafka, and a link marked seen only once Kafka acknowledged it.

One process keeps thousands of feeds in flight: fetching is async I/O, results go to a single
emitter task that produces them in batches and stores their state in one SQLite transaction.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from kafka import KafkaProducer

from ingest.assignment import FeedAssignment
from ingest.feeds import FeedRegistry, FeedSpec
from ingest.http import AsyncHttpClient
from ingest.politeness import HostLimiter, RobotsCache
from ingest.poller import Poller, PollResult
from ingest.state import StateStore
from newsflow.loop import StageStats
from newsflow.schemas import LinkMessage
from newsflow.settings import HttpSettings, IngestSettings, KafkaSettings

log = logging.getLogger(__name__)

_EMIT_BATCH = 500  # poll results per produce + flush + state transaction
_EMIT_LINGER_S = 0.2
_ASSIGNMENT_WAIT_S = 30.0  # how long --once waits for its first partitions


def state_path(settings: IngestSettings) -> Path:
    return settings.state_dir / "ingest.sqlite"


class _RegistryFile:
    """The feed registry, re-read only when the file changes (a pass runs every second)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._feeds: tuple[FeedSpec, ...] = ()

    def enabled(self) -> tuple[FeedSpec, ...]:
        stat = self.path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._feeds = FeedRegistry.load(self.path).enabled()
            self._stamp = stamp
        return self._feeds


class PollerService:
    """Polls this replica's due feeds until stopped; ``once`` polls each of them once."""

    def __init__(
        self,
        kafka: KafkaSettings,
        http: HttpSettings,
        ingest: IngestSettings,
        producer: KafkaProducer,
        stats: StageStats,
        assignment: FeedAssignment | None = None,
    ) -> None:
        self.http_settings = http
        self.ingest = ingest
        self.producer = producer
        self.stats = stats
        self.topic = kafka.topic("links")
        self.store = StateStore(state_path(ingest))
        self.registry = _RegistryFile(ingest.feeds_file)
        if assignment is None and ingest.assignment == "kafka":
            assignment = FeedAssignment(kafka, ingest.assignment_partitions)
        self.assignment = assignment

    def close(self) -> None:
        if self.assignment is not None:
            self.assignment.close()
        self.store.close()

    def run(self, stop: threading.Event, once: bool = False) -> None:
        try:
            asyncio.run(self._run(stop, once))
        finally:
            self.close()

    async def _run(self, stop: threading.Event, once: bool) -> None:
        async with AsyncHttpClient(self.http_settings, max_connections=self.ingest.concurrency) as http:
            poller = self.make_poller(http)
            if once and self.assignment is not None:
                await self._await_assignment(stop)
            while not stop.is_set():
                try:
                    await self.poll_pass(poller)
                except Exception:  # the poller must outlive any one bad pass; logged with its traceback
                    log.exception("poll pass failed")
                if once:
                    return
                await asyncio.to_thread(stop.wait, 1.0)

    def make_poller(self, http: AsyncHttpClient) -> Poller:
        robots = RobotsCache(http, self.http_settings.user_agent, ttl_s=self.ingest.robots_ttl_s)
        hosts = HostLimiter(self.ingest.per_host_concurrency, self.ingest.per_host_delay_s)
        return Poller(
            self.store,
            http,
            self.stats,
            self.ingest.max_items_per_feed,
            robots,
            hosts,
            recheck_after_s=self.ingest.recheck_after_s,
            max_rechecks=self.ingest.max_rechecks,
            recheck_backoff=self.ingest.recheck_backoff,
        )

    async def _await_assignment(self, stop: threading.Event) -> None:
        deadline = time.monotonic() + _ASSIGNMENT_WAIT_S
        while self.assignment is not None and not stop.is_set() and time.monotonic() < deadline:
            if await asyncio.to_thread(self.assignment.refresh, 500):
                return

    def my_feeds(self) -> list[FeedSpec]:
        """The enabled feeds this replica owns (all of them without Kafka assignment)."""
        feeds = self.registry.enabled()
        if self.assignment is None:
            return list(feeds)
        self.assignment.refresh()  # between passes only: see ingest.assignment
        return self.assignment.mine(feeds)

    async def poll_pass(self, poller: Poller) -> int:
        """One pass over this replica's due feeds and due rechecks; returns how many links were emitted."""
        feeds, now = self.my_feeds(), time.time()
        due = poller.due(feeds, now)
        rechecks = poller.due_rechecks(feeds, now)
        if not due and not rechecks:
            return 0
        results: asyncio.Queue[PollResult | None] = asyncio.Queue()
        slots = asyncio.Semaphore(self.ingest.concurrency)

        async def poll_one(feed: FeedSpec) -> None:
            async with slots:
                await results.put(await poller.poll(feed))

        emitter = asyncio.create_task(self._emit_all(poller, results))
        try:
            for recheck in rechecks:
                await results.put(recheck)
            await asyncio.gather(*(poll_one(feed) for feed in due))
        finally:
            await results.put(None)
        return await emitter

    async def _emit_all(self, poller: Poller, results: asyncio.Queue[PollResult | None]) -> int:
        """Collects results for up to ``_EMIT_LINGER_S`` so one produce + flush + transaction serves many."""
        emitted = 0
        while True:
            batch = [await results.get()]
            deadline = asyncio.get_running_loop().time() + _EMIT_LINGER_S
            while batch[-1] is not None and len(batch) < _EMIT_BATCH:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(results.get(), remaining))
                except TimeoutError:
                    break
            ready = [result for result in batch if result is not None]
            if ready:
                emitted += await self._emit(poller, ready)
            if batch[-1] is None:
                return emitted

    async def _emit(self, poller: Poller, results: Sequence[PollResult]) -> int:
        links = [link for result in results for link in result.links]
        try:
            if links:
                await asyncio.to_thread(self._publish, links)
        except Exception:  # Kafka down: the feeds back off like failed ones and are re-read in full later
            log.exception("producing links failed")
            poller.release(results)
            failed = [
                PollResult(result.feed, "failed", "emit_failed")
                for result in results
                if result.outcome != "recheck"  # a feed's schedule is its polls' business only
            ]
            poller.record(failed, time.time())
            return 0
        poller.emitted(results)
        poller.record(results, time.time())
        return len(links)

    def _publish(self, links: Sequence[LinkMessage]) -> None:
        futures = [
            self.producer.send(self.topic, key=link.key(), value=link.model_dump_json().encode("utf-8"))
            for link in links
        ]
        self.producer.flush(timeout=60)
        for future in futures:
            future.get(timeout=60)
