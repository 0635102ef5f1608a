"""Our HTTP client against a real local server: limits, failures and their reasons, SSRF guard."""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler

import brotli  # type: ignore[import-untyped]  # brotli ships no type information
import pytest

from ingest.http import (
    AsyncHttpClient,
    FetchResult,
    FetchRetryable,
    FetchSkipped,
    HttpClient,
    Validators,
    is_public_address,
)
from ingest.stage import FetchStage
from newsflow.demo.server import SiteServer, demo_site_root
from newsflow.errors import RetryableError, SkipMessage
from newsflow.schemas import LinkMessage
from newsflow.settings import HttpSettings


@pytest.fixture
def server() -> Iterator[SiteServer]:
    with SiteServer(demo_site_root()) as site:
        yield site


LIMITS = HttpSettings(
    allowed_hosts=("127.0.0.1",),
    max_bytes=1024 * 1024,
    read_timeout_s=1.0,
    total_timeout_s=3.0,
    max_redirects=3,
)
Get = Callable[..., FetchResult]


@pytest.fixture
def client() -> Iterator[HttpClient]:
    with HttpClient(LIMITS) as http:
        yield http


class _AsyncRunner:
    """Runs the async client on a private event loop, so each test reads like the sync one."""

    def __init__(self, settings: HttpSettings) -> None:
        self.loop = asyncio.new_event_loop()
        self.client = self.loop.run_until_complete(self._make(settings))

    @staticmethod
    async def _make(settings: HttpSettings) -> AsyncHttpClient:
        return AsyncHttpClient(settings)

    def get(self, url: str, validators: Validators | None = None, accept: str = "*/*") -> FetchResult:
        return self.loop.run_until_complete(self.client.get(url, validators, accept))

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


@pytest.fixture(params=["sync", "async"])
def get(request: pytest.FixtureRequest, client: HttpClient) -> Iterator[Get]:
    """The same rules must hold for the fetch stage's sync client and the poller's async one."""
    if request.param == "sync":
        yield client.get
        return
    runner = _AsyncRunner(LIMITS)
    try:
        yield runner.get
    finally:
        runner.close()


def respond(status: int, body: bytes = b"", headers: dict[str, str] | None = None):
    def handler(request: BaseHTTPRequestHandler) -> None:
        request.send_response(status)
        for name, value in (headers or {}).items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    return handler


def reason_of(error: pytest.ExceptionInfo[BaseException]) -> str:
    assert isinstance(error.value, SkipMessage | RetryableError)
    return error.value.reason


def test_conditional_get_answers_not_modified(server: SiteServer, get: Get):
    first = get(server.url("feeds/world-en.rss"))
    assert first.status == 200
    again = get(server.url("feeds/world-en.rss"), validators=Validators(etag=first.headers["etag"]))
    assert again.not_modified


def test_gzip_bodies_are_decoded(server: SiteServer, get: Get):
    html = b"<html><body>" + b"<p>word</p>" * 100 + b"</body></html>"
    server.add_route(
        "/gz", respond(200, gzip.compress(html), {"Content-Encoding": "gzip", "Content-Type": "text/html"})
    )
    assert get(server.url("gz")).body == html


@pytest.mark.parametrize(
    ("status", "error_type", "reason"),
    [
        (404, FetchSkipped, "http_404"),
        (410, FetchSkipped, "http_410"),
        (503, FetchRetryable, "http_503"),
        (429, FetchRetryable, "http_429"),
    ],
)
def test_http_errors_map_to_fates(server: SiteServer, get: Get, status: int, error_type: type, reason: str):
    server.add_route("/status", respond(status, b"nope"))
    with pytest.raises(error_type) as error:
        get(server.url("status"))
    assert reason_of(error) == reason


def test_redirect_loops_and_long_chains_stop(server: SiteServer, get: Get):
    server.add_route("/a", respond(302, headers={"Location": "/b"}))
    server.add_route("/b", respond(302, headers={"Location": "/a"}))
    with pytest.raises(FetchSkipped) as loop:
        get(server.url("a"))
    assert reason_of(loop) == "redirect_loop"
    for i in range(6):
        server.add_route(f"/hop{i}", respond(301, headers={"Location": f"/hop{i + 1}"}))
    with pytest.raises(FetchSkipped) as chain:
        get(server.url("hop0"))
    assert reason_of(chain) == "too_many_redirects"


def test_a_declared_huge_page_is_refused_before_reading(server: SiteServer, get: Get):
    def huge(request: BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.send_header("Content-Type", "text/html")
        request.send_header("Content-Length", str(50 * 1024 * 1024))
        request.end_headers()
        request.wfile.write(b"<html>" + b"x" * 65536)

    server.add_route("/huge", huge)
    with pytest.raises(FetchSkipped) as error:
        get(server.url("huge"))
    assert reason_of(error) == "too_large"


def test_a_never_ending_response_is_cut_at_the_cap(server: SiteServer, get: Get):
    def endless(request: BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.send_header("Content-Type", "text/html")
        request.end_headers()  # no length: the body ends when the connection does, i.e. never
        chunk = b"<p>" + b"y" * 8192 + b"</p>"
        try:
            for _ in range(10_000):
                request.wfile.write(chunk)
        except OSError:
            pass

    server.add_route("/endless", endless)
    started = time.monotonic()
    with pytest.raises(FetchSkipped) as error:
        get(server.url("endless"))
    assert reason_of(error) == "too_large"
    assert time.monotonic() - started < 10


def test_a_stalled_server_times_out(server: SiteServer, get: Get):
    def stall(request: BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.send_header("Content-Length", "100")
        request.end_headers()
        time.sleep(2.5)

    server.add_route("/stall", stall)
    with pytest.raises(FetchRetryable) as error:
        get(server.url("stall"))
    assert reason_of(error) == "timeout"


def test_ssrf_guard_refuses_internal_targets_unless_allowed(server: SiteServer):
    with HttpClient(HttpSettings()) as strict:
        for url in (
            server.url("feeds/world-en.rss"),
            "http://169.254.169.254/latest/meta-data/",
            "http://10.1.2.3/",
            "http://[::1]:8080/",
            "http://0.0.0.0/",
        ):
            with pytest.raises(FetchSkipped) as error:
                strict.get(url)
            assert reason_of(error) == "blocked_address"
        with pytest.raises(FetchSkipped) as scheme:
            strict.get("file:///etc/passwd")
        assert reason_of(scheme) == "unsupported_scheme"
    assert is_public_address("93.184.216.34")
    assert not is_public_address("::ffff:127.0.0.1")


def test_a_redirect_to_an_internal_address_is_refused(server: SiteServer):
    with HttpClient(HttpSettings(allowed_hosts=("127.0.0.1",))) as http:
        server.add_route("/jump", respond(302, headers={"Location": "http://169.254.169.254/"}))
        with pytest.raises(FetchSkipped) as error:
            http.get(server.url("jump"))
        assert reason_of(error) == "blocked_address"


def test_fetch_stage_skips_non_html_and_empty_bodies(server: SiteServer, client: HttpClient):
    from datetime import UTC, datetime

    server.add_route("/doc.pdf", respond(200, b"%PDF-1.7", {"Content-Type": "application/pdf"}))
    server.add_route("/empty", respond(200, b"", {"Content-Type": "text/html"}))
    stage = FetchStage(client)
    for path, reason in (("doc.pdf", "unsupported_content_type"), ("empty", "empty_body")):
        link = LinkMessage(
            url=server.url(path),
            canonical_url=server.url(path),
            article_id="0" * 32,
            feed_url="x",
            publisher="x",
            discovered_at=datetime.now(UTC),
        )
        with pytest.raises(SkipMessage) as error:
            stage.process(link)
        assert error.value.reason == reason


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("gzip", gzip.compress), ("deflate", zlib.compress), ("br", brotli.compress)],
)
def test_every_advertised_content_encoding_is_decoded(server: SiteServer, get: Get, encoding, compress):
    feed = "<?xml version='1.0' encoding='utf-8'?><rss><channel><title>Grüße</title></channel></rss>"
    raw = feed.encode("utf-8")
    server.add_route("/enc", respond(200, compress(raw), {"Content-Encoding": encoding}))
    assert get(server.url("enc")).body == raw


def test_a_corrupt_compressed_body_is_a_decoding_error(server: SiteServer, get: Get):
    server.add_route("/bad-gz", respond(200, b"not gzip at all", {"Content-Encoding": "gzip"}))
    with pytest.raises(FetchSkipped) as error:
        get(server.url("bad-gz"))
    assert reason_of(error) == "content_decoding_error"


def test_a_compression_bomb_is_cut_at_the_decompressed_cap(server: SiteServer, get: Get):
    bomb = gzip.compress(b"\0" * (LIMITS.max_bytes * 4))  # small on the wire, 4 MB unpacked
    server.add_route("/bomb", respond(200, bomb, {"Content-Encoding": "gzip"}))
    with pytest.raises(FetchSkipped) as error:
        get(server.url("bomb"))
    assert reason_of(error) == "too_large"


def test_the_user_agent_is_the_configured_one(server: SiteServer, get: Get):
    seen: list[str] = []

    def record(request: BaseHTTPRequestHandler) -> None:
        seen.append(request.headers.get("User-Agent", ""))
        respond(200, b"ok")(request)

    server.add_route("/ua", record)
    get(server.url("ua"))
    assert seen == [LIMITS.user_agent]


def test_the_async_client_fetches_many_urls_concurrently(server: SiteServer):
    """Requests overlap on one event loop: the slowest path bounds the batch, not their sum."""
    gate = threading.Semaphore(0)
    in_flight = {"now": 0, "max": 0}
    lock = threading.Lock()

    def slow(request: BaseHTTPRequestHandler) -> None:
        with lock:
            in_flight["now"] += 1
            in_flight["max"] = max(in_flight["max"], in_flight["now"])
        gate.acquire(timeout=0.3)  # nobody releases: every request waits 0.3 s
        with lock:
            in_flight["now"] -= 1
        respond(200, b"ok")(request)

    server.add_route("/slow", slow)

    async def fetch_all() -> list[FetchResult]:
        async with AsyncHttpClient(LIMITS, max_connections=50) as http:
            return await asyncio.gather(*(http.get(server.url(f"slow?i={i}")) for i in range(20)))

    started = time.monotonic()
    results = asyncio.run(fetch_all())
    assert [r.status for r in results] == [200] * 20
    assert in_flight["max"] > 5
    assert time.monotonic() - started < 20 * 0.3


def test_a_revision_from_the_poller_reaches_the_article(server: SiteServer, client: HttpClient):
    from datetime import UTC, datetime

    url = server.url("articles/en-port-strike.html")
    link = LinkMessage(
        url=url,
        canonical_url=url,
        article_id="0" * 32,
        feed_url="x",
        publisher="x",
        discovered_at=datetime.now(UTC),
        revision=3,
    )
    assert FetchStage(client).process(link).revision == 3
