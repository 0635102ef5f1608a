"""Politeness against a real local server: robots.txt (cached, with a TTL), per-host concurrency and
spacing, and the User-Agent robots.txt groups are matched against."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from ingest.feeds import FeedSpec
from ingest.http import AsyncHttpClient, FetchRetryable
from ingest.politeness import HostLimiter, RobotsCache, agent_token
from ingest.poller import Poller, PollResult
from ingest.state import StateStore
from newsflow.demo.server import SiteServer, demo_site_root
from newsflow.loop import StageStats
from newsflow.settings import HttpSettings

HTTP = HttpSettings(allowed_hosts=("127.0.0.1",), read_timeout_s=3.0, total_timeout_s=10.0)


@pytest.fixture
def site() -> Iterator[SiteServer]:
    with SiteServer(demo_site_root()) as server:
        yield server


def text(status: int, body: str, content_type: str = "text/plain"):
    def handler(request: BaseHTTPRequestHandler) -> None:
        data = body.encode()
        request.send_response(status)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    return handler


def feed_of(*links: str) -> str:
    items = "".join(f"<item><title>t</title><link>{link}</link></item>" for link in links)
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>c</title>{items}</channel></rss>'


def requests_to(site: SiteServer, path: str) -> int:
    return sum(1 for _, target in list(site.request_log) if target.split("?")[0] == path)


def poll_all(feeds: list[FeedSpec], hosts: HostLimiter | None = None) -> list[PollResult]:
    async def main() -> list[PollResult]:
        async with AsyncHttpClient(HTTP) as http:
            robots = RobotsCache(http, HTTP.user_agent)
            poller = Poller(StateStore(":memory:"), http, StageStats("poll"), robots=robots, hosts=hosts)
            return list(await asyncio.gather(*(poller.poll(feed) for feed in feeds)))

    return asyncio.run(main())


def test_robots_txt_can_forbid_a_feed_and_the_feed_is_never_requested(site):
    site.add_route("/robots.txt", text(200, "User-agent: *\nDisallow: /private/\n"))
    site.add_route(
        "/private/feed.rss", text(200, feed_of(site.url("articles/a.html")), "application/rss+xml")
    )
    [result] = poll_all([FeedSpec(url=site.url("private/feed.rss"), publisher="p")])
    assert (result.outcome, result.reason) == ("failed", "robots_disallowed")
    assert requests_to(site, "/private/feed.rss") == 0


def test_disallowed_article_links_are_counted_not_emitted(site):
    site.add_route("/robots.txt", text(200, "User-agent: *\nDisallow: /members/\n"))
    links = [site.url("articles/a.html"), site.url("members/b.html"), site.url("members/c.html")]
    site.add_route("/feed.rss", text(200, feed_of(*links), "application/rss+xml"))
    [result] = poll_all([FeedSpec(url=site.url("feed.rss"), publisher="p")])
    assert [link.url for link in result.links] == links[:1]
    assert result.skipped == {"robots_disallowed": 2}


def test_robots_groups_match_our_product_token(site):
    assert agent_token(HTTP.user_agent) == "newsflow"
    site.add_route("/robots.txt", text(200, "User-agent: newsflow\nDisallow: /\n\nUser-agent: *\nAllow: /\n"))
    site.add_route("/feed.rss", text(200, feed_of(site.url("articles/a.html")), "application/rss+xml"))
    [result] = poll_all([FeedSpec(url=site.url("feed.rss"), publisher="p")])
    assert result.reason == "robots_disallowed"


def test_missing_robots_allows_and_a_failing_one_forbids_with_its_own_reason(site):
    site.add_route("/feed.rss", text(200, feed_of(site.url("articles/a.html")), "application/rss+xml"))
    feed = FeedSpec(url=site.url("feed.rss"), publisher="p")
    assert poll_all([feed])[0].outcome == "new_items"  # the demo site serves no robots.txt route: 404
    site.add_route("/robots.txt", text(503, "maintenance"))
    [result] = poll_all([feed])
    assert (result.outcome, result.reason) == ("failed", "robots_unavailable")


def test_robots_is_fetched_once_per_host_and_again_after_its_ttl(site):
    site.add_route("/robots.txt", text(200, "User-agent: *\nAllow: /\nCrawl-delay: 2\n"))
    now = [0.0]

    async def main() -> tuple[int, int, float | None]:
        async with AsyncHttpClient(HTTP) as http:
            robots = RobotsCache(http, HTTP.user_agent, ttl_s=100.0, clock=lambda: now[0])
            urls = [site.url(f"feeds/{i}.rss") for i in range(20)]
            await asyncio.gather(*(robots.allowed(url) for url in urls))
            cached = requests_to(site, "/robots.txt")
            now[0] = 101.0
            await robots.allowed(urls[0])
            return cached, requests_to(site, "/robots.txt"), robots.crawl_delay(urls[0])

    cached, after_ttl, delay = asyncio.run(main())
    assert (cached, after_ttl) == (1, 2)
    assert delay == 2.0


def test_network_failures_of_robots_keep_their_real_reason():
    async def main() -> None:
        async with AsyncHttpClient(HTTP) as http:
            robots = RobotsCache(http, HTTP.user_agent)
            await robots.allowed("http://127.0.0.1:9/feed.rss")  # discard port: connection refused

    with pytest.raises(FetchRetryable) as error:
        asyncio.run(main())
    assert error.value.reason == "connection_error"


def test_per_host_concurrency_is_capped(site):
    lock = threading.Lock()
    in_flight = {"now": 0, "max": 0}

    def slow_feed(request: BaseHTTPRequestHandler) -> None:
        with lock:
            in_flight["now"] += 1
            in_flight["max"] = max(in_flight["max"], in_flight["now"])
        time.sleep(0.1)
        with lock:
            in_flight["now"] -= 1
        text(200, feed_of(), "application/rss+xml")(request)

    site.add_route("/slow.rss", slow_feed)
    feeds = [FeedSpec(url=site.url(f"slow.rss?n={i}"), publisher="p") for i in range(12)]
    results = poll_all(feeds, HostLimiter(per_host=3, min_delay_s=0.0))
    assert all(result.outcome != "failed" for result in results)
    assert in_flight["max"] == 3


def test_request_starts_to_one_host_are_spaced_by_the_delay():
    starts: list[float] = []

    async def main() -> None:
        limiter = HostLimiter(per_host=10, min_delay_s=0.1)

        async def one(url: str, delay: float | None = None) -> None:
            async with limiter.slot(url, delay):
                starts.append(asyncio.get_running_loop().time())

        await asyncio.gather(*(one("http://a.example/feed") for _ in range(5)))
        await one("http://b.example/feed")  # another host is not held up by a's queue
        await asyncio.gather(*(one("http://c.example/feed", delay=0.3) for _ in range(2)))

    asyncio.run(main())
    gaps = [b - a for a, b in itertools.pairwise(starts[:5])]
    assert all(gap >= 0.099 for gap in gaps)
    assert starts[5] - starts[4] < 0.05
    assert starts[7] - starts[6] >= 0.299  # a robots Crawl-delay longer than the minimum wins
