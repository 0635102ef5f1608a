"""The poller service on the real Kafka: links produced and acknowledged, revisions on the wire,
and several replicas splitting the feeds through Kafka partition assignment without overlap."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from ingest.assignment import FeedAssignment, feed_partition
from ingest.feeds import FeedRegistry, FeedSpec
from ingest.http import AsyncHttpClient
from ingest.service import PollerService
from newsflow.demo.server import SiteServer, demo_site_root
from newsflow.kafka_io import client_config, ensure_topics, make_producer
from newsflow.loop import StageStats
from newsflow.schemas import LinkMessage
from newsflow.settings import HttpSettings, IngestSettings, KafkaSettings

pytestmark = pytest.mark.kafka

HTTP = HttpSettings(allowed_hosts=("127.0.0.1",), read_timeout_s=3.0, total_timeout_s=10.0)
FEEDS = 40


@pytest.fixture
def site() -> Iterator[SiteServer]:
    with SiteServer(demo_site_root()) as server:
        yield server


def serve_feeds(site: SiteServer, count: int, version: dict[int, int]) -> list[FeedSpec]:
    """``count`` small feeds, one article each; ``version[i]`` bumps feed i's item date."""

    def handler(request: BaseHTTPRequestHandler) -> None:
        i = int(request.path.split("/")[-1].split(".")[0])
        updated = f"2026-11-27T{10 + version.get(i, 0):02d}:00:00Z"
        body = (
            '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>f</title>'
            f"<id>urn:f{i}</id><updated>{updated}</updated><entry><id>urn:a{i}</id><title>Article {i}</title>"
            f'<link href="{site.url(f"articles/{i}.html")}"/><updated>{updated}</updated></entry></feed>'
        ).encode()
        request.send_response(200)
        request.send_header("Content-Type", "application/atom+xml")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    feeds = []
    for i in range(count):
        site.add_route(f"/f/{i}.atom", handler)
        feeds.append(FeedSpec(url=site.url(f"f/{i}.atom"), kind="atom", publisher="p", min_interval_s=60))
    return feeds


def ingest_settings(tmp_path: Path, feeds: list[FeedSpec], name: str, **extra) -> IngestSettings:
    feeds_file = tmp_path / "feeds.yaml"
    FeedRegistry(feeds=tuple(feeds)).save(feeds_file)
    return IngestSettings(
        feeds_file=feeds_file,
        state_dir=tmp_path / name,
        per_host_concurrency=4,
        per_host_delay_s=0.0,
        **extra,
    )


def one_pass(service: PollerService) -> int:
    async def main() -> int:
        async with AsyncHttpClient(HTTP) as http:
            return await service.poll_pass(service.make_poller(http))

    return asyncio.run(main())


def read_links(kafka: KafkaSettings, expected: int, timeout_s: float = 30.0) -> list[LinkMessage]:
    consumer = KafkaConsumer(**client_config(kafka), enable_auto_commit=False)
    topic = kafka.topic("links")
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    links: list[LinkMessage] = []
    deadline = time.monotonic() + timeout_s
    while len(links) < expected and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            links.extend(LinkMessage.model_validate_json(record.value) for record in records)
    consumer.poll(timeout_ms=1000)  # and nothing beyond the expected
    consumer.close()
    return links


def requested(site: SiteServer) -> list[str]:
    return [target for _, target in list(site.request_log) if target.startswith("/f/")]


def test_links_reach_kafka_once_and_a_changed_item_as_its_next_revision(site, kafka_settings, tmp_path):
    ensure_topics(kafka_settings, ["links"])
    version: dict[int, int] = {}
    feeds = serve_feeds(site, 5, version)
    producer = make_producer(kafka_settings)
    service = PollerService(
        kafka_settings, HTTP, ingest_settings(tmp_path, feeds, "a"), producer, StageStats("poll")
    )
    try:
        assert one_pass(service) == 5
        assert one_pass(service) == 0  # not due yet
        for state in service.store.all_feeds().values():
            service.store.save_feeds([replace(state, next_poll_at=0.0)])
        version[3] = 1
        assert one_pass(service) == 1
    finally:
        service.close()
        producer.close()
    links = read_links(kafka_settings, 6)
    assert len(links) == 6
    revised = [link for link in links if link.revision == 2]
    assert [link.url for link in revised] == [site.url("articles/3.html")]
    assert service.stats.as_dict()["new_items"] == {"new_items": 6}


def test_due_rechecks_reach_kafka_without_polling_their_feeds(site, kafka_settings, tmp_path):
    ensure_topics(kafka_settings, ["links"])
    feeds = serve_feeds(site, 3, {})
    producer = make_producer(kafka_settings)
    settings = ingest_settings(tmp_path, feeds, "a", recheck_after_s=1.0, max_rechecks=1)
    service = PollerService(kafka_settings, HTTP, settings, producer, StageStats("poll"))
    try:
        assert one_pass(service) == 3
        polls = len(requested(site))
        assert one_pass(service) == 0  # neither a feed nor a recheck is due yet
        time.sleep(1.2)
        assert one_pass(service) == 3  # the rechecks; the feeds are not due (60 s interval)
        assert len(requested(site)) == polls
        time.sleep(1.2)
        assert one_pass(service) == 0  # one recheck per version
    finally:
        service.close()
        producer.close()
    links = read_links(kafka_settings, 6)
    assert sorted(link.recheck for link in links) == [False] * 3 + [True] * 3
    assert {link.revision for link in links} == {1}
    assert service.stats.as_dict()["recheck"] == {"recheck_due": 3}


def test_two_replicas_poll_disjoint_feed_sets_that_cover_every_feed(site, kafka_settings, tmp_path):
    feeds = serve_feeds(site, FEEDS, {})
    producer = make_producer(kafka_settings)
    ensure_topics(kafka_settings, ["links"])
    settings = {name: ingest_settings(tmp_path, feeds, name, assignment="kafka") for name in ("a", "b")}
    replicas = {
        name: PollerService(kafka_settings, HTTP, settings[name], producer, StageStats(f"poll-{name}"))
        for name in ("a", "b")
    }
    a, b = replicas["a"], replicas["b"]
    try:
        assert a.assignment is not None and b.assignment is not None
        everything = frozenset(range(a.assignment.partitions))
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # both join the group; the coordinator splits the partitions
            owned_a, owned_b = a.assignment.refresh(200), b.assignment.refresh(200)
            if owned_a and owned_b and not owned_a & owned_b and owned_a | owned_b == everything:
                break
        else:
            pytest.fail(f"no stable split: {a.assignment.owned} / {b.assignment.owned}")

        emitted = one_pass(a) + one_pass(b)
        polled_a, polled_b = set(a.store.all_feeds()), set(b.store.all_feeds())
        assert polled_a and polled_b and not polled_a & polled_b
        assert polled_a | polled_b == {feed.url for feed in feeds}
        assert all(feed_partition(url, a.assignment.partitions) in a.assignment.owned for url in polled_a)
        assert sorted(requested(site)) == sorted(f"/f/{i}.atom" for i in range(FEEDS))  # each exactly once
        assert emitted == FEEDS

        # Replica a leaves: b takes its partitions over and polls a's feeds, nothing else.
        a.close()
        a.assignment = None
        deadline = time.monotonic() + 90
        while b.assignment.refresh(200) != everything and time.monotonic() < deadline:
            pass
        assert b.assignment.owned == everything
        before = set(b.store.all_feeds())
        one_pass(b)
        assert set(b.store.all_feeds()) - before == polled_a
        assert len(requested(site)) == FEEDS + len(polled_a)
    finally:
        b.close()
        if a.assignment is not None:
            a.close()
        producer.close()


def test_the_assignment_uses_the_topics_real_partition_count(kafka_settings):
    first = FeedAssignment(kafka_settings, partitions=4)
    second = FeedAssignment(kafka_settings, partitions=9)  # the topic exists already with 4
    try:
        assert first.partitions == second.partitions == 4
    finally:
        first.close()
        second.close()


def test_a_single_replica_with_kafka_assignment_polls_every_feed_once(site, kafka_settings, tmp_path):
    feeds = serve_feeds(site, 12, {})
    producer = make_producer(kafka_settings)
    ensure_topics(kafka_settings, ["links"])
    settings = ingest_settings(tmp_path, feeds, "solo", assignment="kafka", assignment_partitions=4)
    service = PollerService(kafka_settings, HTTP, settings, producer, StageStats("poll"))
    try:
        service.run(threading.Event(), once=True)  # waits for its partitions, polls, returns; closes itself
    finally:
        producer.close()
    assert sorted(requested(site)) == sorted(f"/f/{i}.atom" for i in range(12))
    assert service.stats.as_dict() == {"new_items": {"new_items": 12}}


def test_links_kafka_refuses_are_not_marked_seen_and_the_feed_backs_off(site, kafka_settings, tmp_path):
    ensure_topics(kafka_settings, ["links"])
    feeds = serve_feeds(site, 2, {})
    # A producer whose request limit no link fits in: Kafka refuses every send, as when it is unusable.
    tiny = KafkaProducer(**client_config(kafka_settings), max_request_size=64)
    service = PollerService(
        kafka_settings, HTTP, ingest_settings(tmp_path, feeds, "a"), tiny, StageStats("poll")
    )
    try:
        assert one_pass(service) == 0
        states = service.store.all_feeds()
        assert {s.last_error for s in states.values()} == {"emit_failed"}
        assert all(s.consecutive_failures == 1 and s.etag is None for s in states.values())
        assert service.stats.as_dict() == {"failed": {"emit_failed": 2}}
        assert service.store.known([link_id(site, i) for i in range(2)], feeds[0].url) == {}
    finally:
        service.close()
        tiny.close()


def link_id(site: SiteServer, i: int) -> str:
    from ingest.urls import article_id, canonicalize_url

    return article_id(canonicalize_url(site.url(f"articles/{i}.html")))
