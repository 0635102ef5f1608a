"""The index loop when Elasticsearch refuses writes: nothing committed, nothing lost once it is back."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from kafka import KafkaAdminClient

from index.client import elasticsearch_url, make_client
from index.setup import setup
from index.stage import ElasticsearchBulkSink, IndexStage
from newsflow.errors import RetryableError
from newsflow.kafka_io import client_config, ensure_topics, make_consumer, make_producer
from newsflow.loop import DeadLetterWriter, StreamLoop
from newsflow.settings import ElasticsearchSettings, KafkaSettings, LoopSettings
from tests.test_index_es import enriched

LOOP = LoopSettings(batch_size=25, linger_s=0.2, max_attempts=2, backoff_initial_s=0.05, backoff_max_s=0.2)


class OverloadedProxy(ThreadingHTTPServer):
    """Forwards to Elasticsearch, but answers every ``_bulk`` with 429 while ``reject`` is set."""

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.upstream = httpx.Client(base_url=upstream, timeout=30)
        self.reject = True
        self.rejected = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(BaseHTTPRequestHandler):
    server: OverloadedProxy

    def _relay(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.server.reject and self.path.split("?")[0].endswith("/_bulk"):
            self.server.rejected += 1
            self._answer(429, b'{"error":{"type":"es_rejected_execution_exception"},"status":429}')
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in {"host", "content-length"}}
        upstream = self.server.upstream.request(self.command, self.path, content=body, headers=headers)
        self._answer(upstream.status_code, upstream.content, upstream.headers.get("content-type"))

    def _answer(self, status: int, body: bytes, content_type: str | None = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type or "application/json")
        self.send_header("X-Elastic-Product", "Elasticsearch")  # the client checks it
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _relay  # noqa: N815 - http.server's handler names

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads the proxy's counters, not its log."""


@pytest.fixture
def proxy(es_settings: ElasticsearchSettings) -> Iterator[OverloadedProxy]:
    server = OverloadedProxy(elasticsearch_url(es_settings))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.upstream.close()


def wait_for(condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def committed(settings: KafkaSettings, group: str) -> int:
    admin = KafkaAdminClient(**client_config(settings))
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
        return sum(max(meta.offset, 0) for meta in offsets.values())
    finally:
        admin.close()


@pytest.mark.kafka
@pytest.mark.elasticsearch
def test_offsets_wait_for_elasticsearch_and_nothing_is_lost(
    kafka_settings: KafkaSettings, es_settings: ElasticsearchSettings, es_client, proxy: OverloadedProxy
):
    setup(es_client, es_settings)
    ensure_topics(kafka_settings, ("enriched", "dead-letters"))
    producer = make_producer(kafka_settings)
    articles = [enriched(n) for n in range(60)]
    for article in articles:
        producer.send(
            kafka_settings.topic("enriched"), key=article.key(), value=article.model_dump_json().encode()
        )
    producer.flush()
    via_proxy = make_client(es_settings.model_copy(update={"url": proxy.url}))
    loop = StreamLoop(
        IndexStage(),
        make_consumer(kafka_settings, LOOP, "index", [kafka_settings.topic("enriched")]),
        ElasticsearchBulkSink(via_proxy, es_settings.alias, refresh=True),
        DeadLetterWriter(producer, kafka_settings.topic("dead-letters"), "index"),
        LOOP,
    )
    group = f"{kafka_settings.group_prefix}-index"
    stop = threading.Event()
    runner = threading.Thread(target=loop.run, args=(stop,))
    runner.start()
    try:
        # Several rejected batches: each retried, then rewound, never committed, never dead-lettered.
        wait_for(lambda: proxy.rejected >= 3 * LOOP.max_attempts)
        assert committed(kafka_settings, group) == 0
        assert es_client.count(index=es_settings.alias)["count"] == 0
        assert loop.stats.total() == 0

        proxy.reject = False  # Elasticsearch is back
        wait_for(lambda: committed(kafka_settings, group) == len(articles))
    finally:
        stop.set()
        runner.join()
        loop.consumer.close()
        producer.close()
    assert es_client.count(index=es_settings.alias)["count"] == len(articles)
    assert loop.stats.as_dict() == {"ok": {"written": len(articles)}}


def test_an_unreachable_cluster_is_a_retryable_failure():
    """A closed port (cluster down) must not dead-letter the batch: the loop retries and rewinds."""
    closed = make_client(ElasticsearchSettings(url="http://127.0.0.1:9", request_timeout_s=2))
    sink = ElasticsearchBulkSink(closed, "any-alias")
    with pytest.raises(RetryableError) as failure:
        sink.write([IndexStage().process(enriched(1))])
    assert failure.value.reason == "elasticsearch_unavailable"
