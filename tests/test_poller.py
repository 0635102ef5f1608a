"""Feed parsing and the poller's bookkeeping (no Kafka: the poller only returns links), against a
real local HTTP server: new items, revisions, restarts and every kind of bad input."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import TypeVar

import pytest

from ingest.feeds import FeedRegistry, FeedSpec
from ingest.http import AsyncHttpClient
from ingest.politeness import HostLimiter
from ingest.poller import FeedParseError, Poller, PollResult, parse_feed
from ingest.state import StateStore
from newsflow.demo.server import SiteServer, demo_site_root
from newsflow.loop import StageStats
from newsflow.settings import HttpSettings
from tests.test_http import respond

RSS = FeedSpec(url="https://example.org/feed", publisher="example")
HTTP = HttpSettings(allowed_hosts=("127.0.0.1",), read_timeout_s=2.0, total_timeout_s=10.0)
T = TypeVar("T")


@pytest.fixture
def site() -> Iterator[SiteServer]:
    with SiteServer(demo_site_root()) as server:
        yield server


def with_poller(store: StateStore, scenario: Callable[[Poller], Awaitable[T]], **kwargs) -> T:
    """Run one scenario with a poller on a fresh event loop and HTTP client (as a service would)."""

    async def main() -> T:
        async with AsyncHttpClient(HTTP) as http:
            # The test server's listen backlog is small: a few connections at a time, like a polite poller.
            kwargs.setdefault("hosts", HostLimiter(per_host=4, min_delay_s=0.0))
            return await scenario(Poller(store, http, StageStats("poll"), **kwargs))

    return asyncio.run(main())


def poll_and_emit(
    store: StateStore, feeds: list[FeedSpec], now: float = 1000.0, **kwargs
) -> list[PollResult]:
    """One pass: poll the feeds concurrently, then acknowledge and record them like the service."""

    async def scenario(poller: Poller) -> list[PollResult]:
        results = list(await asyncio.gather(*(poller.poll(feed) for feed in feeds)))
        poller.emitted(results)
        poller.record(results, now)
        return results

    return with_poller(store, scenario, **kwargs)


def rss(items: list[tuple[str, str, str]], channel: str = "news") -> bytes:
    """An RSS 2.0 document of (link, title, description) items, without dates."""
    entries = "".join(
        f"<item><title>{title}</title><link>{link}</link><description>{text}</description></item>"
        for link, title, text in items
    )
    head = f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{channel}</title>'
    return f"{head}{entries}</channel></rss>".encode()


def atom(entries: list[tuple[str, str, datetime]]) -> bytes:
    """An Atom feed of (link, title, updated) entries."""
    body = "".join(
        f'<entry><id>{link}</id><title>{title}</title><link rel="alternate" href="{link}"/>'
        f"<published>2026-11-20T08:00:00Z</published><updated>{updated.isoformat()}</updated></entry>"
        for link, title, updated in entries
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>'
        f"<id>urn:feed</id><updated>2026-11-20T08:00:00Z</updated>{body}</feed>"
    ).encode()


class MutableFeed:
    """A route whose body a test changes between polls (no validators: the body hash decides)."""

    def __init__(self, server: SiteServer, path: str, body: bytes, content_type: str = "application/xml"):
        self.body = body
        self.content_type = content_type
        server.add_route(path, self._serve)

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        respond(200, self.body, {"Content-Type": self.content_type})(request)


def test_every_reference_feed_parses_or_fails_with_a_reason(shared_data: Path):
    files = [p for p in (shared_data / "feeds").rglob("*") if p.suffix in {".xml", ".rss", ".atom", ".rdf"}]
    assert len(files) > 500
    outcomes: dict[str, int] = {}
    for path in files:
        try:
            items = parse_feed(path.read_bytes(), {"content-type": "application/xml"}, RSS)
            key = "items" if items else "empty"
        except FeedParseError as exc:
            key = exc.reason
        outcomes[key] = outcomes.get(key, 0) + 1
    assert outcomes["items"] > 100
    assert set(outcomes) <= {"items", "empty", "not_a_feed", "malformed_feed"}


_HEADER_LINE = re.compile(rb"^Header:\s*([A-Za-z-]+):\s*(.+?)\s*$", re.MULTILINE)


def test_encoding_fixtures_served_with_their_headers_each_get_a_result(shared_data: Path, site, tmp_path):
    """feedparser's encoding suite, each file served with the HTTP headers its comment names
    (charset overrides, text/plain, bogus encodings): the poller names an outcome for every one."""
    files = sorted((shared_data / "feeds" / "feedparser-tests" / "encoding").glob("*.xml"))
    assert len(files) > 50
    feeds = []
    for i, path in enumerate(files):
        body = path.read_bytes()
        headers = {name.decode(): value.decode("latin-1") for name, value in _HEADER_LINE.findall(body)}
        site.add_route(f"/enc{i}", respond(200, body, headers))
        feeds.append(FeedSpec(url=site.url(f"enc{i}"), publisher="enc"))
    results = poll_and_emit(StateStore(tmp_path / "s.sqlite"), feeds)
    failed = {path.name: r.reason for path, r in zip(files, results, strict=True) if r.outcome == "failed"}
    # Only the files the suite itself marks as broken ("bozo_*") may fail, and only as unreadable.
    assert all(name.startswith("bozo_") for name in failed)
    assert set(failed.values()) <= {"not_a_feed", "malformed_feed"}
    assert sum(r.outcome == "new_items" for r in results) >= 1


@pytest.mark.parametrize(
    ("content_type", "declaration", "encoding"),
    [
        ("application/rss+xml; charset=iso-8859-1", "", "latin-1"),  # declared in HTTP only
        ("application/rss+xml", "", "latin-1"),  # declared nowhere
        ("text/xml; charset=utf-8", ' encoding="utf-8"', "cp1252"),  # declared wrongly, twice
        ("application/xml", ' encoding="iso-8859-1"', "latin-1"),  # declared in the document only
    ],
)
def test_feed_encodings_declared_undeclared_or_wrong_decode(
    site, tmp_path, content_type, declaration, encoding
):
    title = "Müller grüßt die Öffentlichkeit"
    document = (
        f'<?xml version="1.0"{declaration}?><rss version="2.0"><channel><title>c</title>'
        f"<item><title>{title}</title><link>{site.url('articles/x.html')}</link></item></channel></rss>"
    )
    site.add_route("/enc", respond(200, document.encode(encoding), {"Content-Type": content_type}))
    [result] = poll_and_emit(
        StateStore(tmp_path / "s.sqlite"), [FeedSpec(url=site.url("enc"), publisher="p")]
    )
    assert result.outcome == "new_items"
    assert [link.title for link in result.links] == [title]


def test_html_instead_of_a_feed_is_named_as_such():
    html = b"<!doctype html><html><head><title>Home</title></head><body><p>Welcome</p></body></html>"
    with pytest.raises(FeedParseError) as error:
        parse_feed(html, {"content-type": "text/html"}, RSS)
    assert error.value.reason == "not_a_feed"


def test_news_sitemaps_yield_their_urls():
    sitemap = b"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">
  <url><loc>https://example.org/a</loc><news:news><news:publication_date>2026-11-27T10:00:00+01:00</news:publication_date>
  <news:title>A title</news:title></news:news></url>
  <url><loc>https://example.org/b</loc><lastmod>2026-11-26</lastmod></url>
</urlset>"""
    items = parse_feed(sitemap, {}, FeedSpec(url="x", kind="news-sitemap", publisher="p"))
    assert [(item.link, item.title) for item in items] == [
        ("https://example.org/a", "A title"),
        ("https://example.org/b", None),
    ]
    assert items[0].published is not None and items[0].published.utcoffset() is not None
    assert items[1].modified is not None


def json_feed(items: list[dict[str, str]]) -> bytes:
    document = {"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": items}
    return json.dumps(document).encode()


def test_json_feeds_yield_their_items_with_dates_and_relative_links():
    body = json_feed(
        [
            {
                "id": "1",
                "url": "https://example.org/a",
                "title": "Ä title",
                "date_published": "2026-11-27T10:00:00+01:00",
            },
            {"id": "2", "url": "/b", "content_text": "text only", "date_modified": "2026-11-27T12:00:00Z"},
            {"id": "3", "external_url": "https://other.example/c", "content_html": "<p>linked</p>"},
            {"id": "4", "title": "no link at all"},
        ]
    )
    items = parse_feed(body, {"content-location": "https://example.org/feed.json"}, RSS)
    assert [(item.link, item.title) for item in items] == [
        ("https://example.org/a", "Ä title"),
        ("https://example.org/b", None),
        ("https://other.example/c", None),
    ]
    assert items[0].published == datetime(2026, 11, 27, 9, 0, tzinfo=UTC) and items[0].modified is None
    assert items[1].published == items[1].modified == datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    assert len({item.digest for item in items}) == 3


def test_a_json_feed_is_polled_and_its_edited_item_becomes_a_revision(site, tmp_path):
    store = StateStore(tmp_path / "s.sqlite")
    feed = FeedSpec(url=site.url("feeds/j.json"), kind="json-feed", publisher="p")
    item = {
        "id": "1",
        "url": site.url("articles/a.html"),
        "title": "A",
        "date_modified": "2026-11-27T10:00:00Z",
    }
    site.add_route(
        "/feeds/j.json", respond(200, json_feed([item]), {"Content-Type": "application/feed+json"})
    )
    [first] = poll_and_emit(store, [feed], now=1000.0)
    assert first.outcome == "new_items" and [(link.title, link.revision) for link in first.links] == [
        ("A", 1)
    ]
    edited = {**item, "title": "A, updated", "date_modified": "2026-11-27T11:00:00Z"}
    site.add_route(
        "/feeds/j.json", respond(200, json_feed([edited]), {"Content-Type": "application/feed+json"})
    )
    [second] = poll_and_emit(store, [feed], now=5000.0)
    assert [(link.title, link.revision) for link in second.links] == [("A, updated", 2)]


def test_relative_item_links_resolve_against_the_feed_url(site, tmp_path):
    site.add_route("/feeds/relative.rss", respond(200, rss([("../articles/a.html", "A", "x")])))
    [result] = poll_and_emit(
        StateStore(tmp_path / "s.sqlite"), [FeedSpec(url=site.url("feeds/relative.rss"), publisher="p")]
    )
    assert [link.url for link in result.links] == [site.url("articles/a.html")]


def test_poller_emits_new_items_once_and_adapts_intervals(site, tmp_path: Path):
    store = StateStore(tmp_path / "state.sqlite")
    feed = FeedSpec(
        url=site.url("feeds/world-en.rss"), publisher="demo", min_interval_s=60, max_interval_s=600
    )
    [first] = poll_and_emit(store, [feed], now=1000.0)
    assert first.outcome == "new_items"
    assert len(first.links) >= 5
    assert all(link.revision == 1 for link in first.links)
    assert all("utm_" not in link.canonical_url and "#" not in link.canonical_url for link in first.links)
    state = store.feed(feed.url)
    assert state is not None and state.interval_s == 60 and state.next_poll_at == 1060.0

    [second] = poll_and_emit(store, [feed], now=2000.0)  # conditional GET: 304
    assert (second.outcome, second.reason) == ("not_modified", "http_304")
    assert store.feed(feed.url).interval_s == 90  # type: ignore[union-attr]

    # A restart (new store object on the same file) re-emits nothing old.
    restarted = StateStore(tmp_path / "state.sqlite")
    [fresh] = poll_and_emit(
        restarted, [FeedSpec(url=site.url("feeds/world-en.rss?fresh=1"), publisher="demo")]
    )
    assert fresh.outcome == "unchanged" and fresh.links == ()

    broken = FeedSpec(
        url=site.url("no-such-feed.xml"), publisher="demo", min_interval_s=60, max_interval_s=600
    )
    [failed] = poll_and_emit(store, [broken], now=1000.0)
    assert (failed.outcome, failed.reason) == ("failed", "http_404")
    poll_and_emit(store, [broken], now=1000.0)
    broken_state = store.feed(broken.url)
    assert broken_state is not None
    assert broken_state.consecutive_failures == 2 and broken_state.next_poll_at == 1000.0 + 240
    assert broken_state.last_error == "http_404"


def test_a_feed_that_keeps_failing_backs_off_up_to_the_cap(site, tmp_path):
    store = StateStore(tmp_path / "s.sqlite")
    feed = FeedSpec(url=site.url("gone.xml"), publisher="p", min_interval_s=60, max_interval_s=600)
    delays = []
    for _ in range(12):
        poll_and_emit(store, [feed], now=0.0)
        delays.append(store.feed(feed.url).next_poll_at)  # type: ignore[union-attr]
    assert delays == sorted(delays)
    assert delays[0] == 120 and delays[-1] == 6 * 3600  # doubled each time, capped at six hours


def test_a_changed_item_is_a_revision_and_its_number_survives_a_restart(site, tmp_path):
    base = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    a, b = site.url("articles/a.html"), site.url("articles/b.html")
    route = MutableFeed(site, "/feeds/live.atom", atom([(a, "A", base), (b, "B", base)]))
    feed = FeedSpec(url=site.url("feeds/live.atom"), kind="atom", publisher="p")
    path = tmp_path / "s.sqlite"

    [first] = poll_and_emit(StateStore(path), [feed])
    assert sorted((link.url, link.revision) for link in first.links) == [(a, 1), (b, 1)]

    route.body = atom([(a, "A (updated)", base + timedelta(hours=1)), (b, "B", base)])
    [second] = poll_and_emit(StateStore(path), [feed])
    assert [(link.url, link.revision) for link in second.links] == [(a, 2)]
    assert second.links[0].modified_at == base + timedelta(hours=1)

    route.body = atom([(a, "A (updated)", base + timedelta(hours=2)), (b, "B", base)])
    [third] = poll_and_emit(StateStore(path), [feed])  # yet another restart: the count goes on
    assert [(link.url, link.revision) for link in third.links] == [(a, 3)]

    route.body = atom([(a, "A (older copy)", base), (b, "B", base)])  # an older version is no revision
    [fourth] = poll_and_emit(StateStore(path), [feed])
    assert fourth.links == ()


def test_without_dates_changed_text_is_a_revision_but_a_republished_item_is_not(site, tmp_path):
    a = site.url("articles/a.html")
    route = MutableFeed(site, "/feeds/plain.rss", rss([(a, "A", "first text")]))
    feed = FeedSpec(url=site.url("feeds/plain.rss"), publisher="p")
    store = StateStore(tmp_path / "s.sqlite")
    assert [link.revision for link in poll_and_emit(store, [feed])[0].links] == [1]

    route.body = rss([(a, "A", "first text")], channel="same items, other channel title")
    assert poll_and_emit(store, [feed])[0].links == ()
    route.body = rss([(a + "?utm_source=rss", "A", "first text")], channel="republished with tracking")
    assert poll_and_emit(store, [feed])[0].links == ()

    route.body = rss([(a, "A", "corrected text")])
    assert [link.revision for link in poll_and_emit(store, [feed])[0].links] == [2]


def test_the_same_article_in_two_feeds_with_different_dates_is_fetched_once(site, tmp_path):
    base = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    a = site.url("articles/a.html")
    MutableFeed(site, "/feeds/x.atom", atom([(a, "A", base)]))
    route_y = MutableFeed(
        site, "/feeds/y.atom", atom([(a + "?utm_medium=y", "A", base + timedelta(hours=3))])
    )
    x = FeedSpec(url=site.url("feeds/x.atom"), kind="atom", publisher="p")
    y = FeedSpec(url=site.url("feeds/y.atom"), kind="atom", publisher="p")
    store = StateStore(tmp_path / "s.sqlite")
    first = poll_and_emit(store, [x])
    second = poll_and_emit(store, [y])
    assert [len(r.links) for r in first + second] == [1, 0]
    assert poll_and_emit(store, [x, y])[0].links == ()  # both feeds polled at once: still nothing new

    route_y.body = atom([(a, "A", base + timedelta(hours=4))])  # feed y updates its own entry
    [revised] = poll_and_emit(store, [y])
    assert [link.revision for link in revised.links] == [2]


def test_items_beyond_the_per_feed_limit_are_counted(site, tmp_path):
    items = [(site.url(f"articles/{i}.html"), f"T{i}", "x") for i in range(30)]
    site.add_route("/feeds/long.rss", respond(200, rss(items)))
    [result] = poll_and_emit(
        StateStore(tmp_path / "s.sqlite"),
        [FeedSpec(url=site.url("feeds/long.rss"), publisher="p")],
        max_items_per_feed=10,
    )
    assert len(result.links) == 10 and result.items == 30
    assert result.skipped == {"over_item_limit": 20}


def _endless(request: BaseHTTPRequestHandler) -> None:
    request.send_response(200)
    request.send_header("Content-Type", "application/rss+xml")
    request.end_headers()  # no length: the body ends when the connection does, i.e. never
    try:
        request.wfile.write(b'<?xml version="1.0"?><rss version="2.0"><channel>')
        for _ in range(100_000):
            request.wfile.write(b"<item><title>" + b"y" * 8192 + b"</title></item>")
    except OSError:
        pass


def _fifty_megabytes(declare_length: bool):
    def handler(request: BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.send_header("Content-Type", "application/rss+xml")
        if declare_length:
            request.send_header("Content-Length", str(50 * 1024 * 1024))
        request.end_headers()
        chunk = b"<!--" + b"z" * (1024 * 1024 - 7) + b"-->"
        try:
            for _ in range(50):
                request.wfile.write(chunk)
        except OSError:
            pass

    return handler


BAD_FEEDS: dict[str, tuple[Callable[[BaseHTTPRequestHandler], None], str]] = {
    "html": (
        respond(
            200, b"<!doctype html><html><body><p>Not a feed</p></body></html>", {"Content-Type": "text/html"}
        ),
        "not_a_feed",
    ),
    "truncated": (
        respond(200, b'<rss version="2.0"><channel><item><title>cut off', {"Content-Type": "text/xml"}),
        "malformed_feed",
    ),
    "declared-50mb": (_fifty_megabytes(declare_length=True), "too_large"),
    "streamed-50mb": (_fifty_megabytes(declare_length=False), "too_large"),
    "never-ending": (_endless, "too_large"),
    "image": (
        respond(200, b"\x89PNG\r\n\x1a\n" + b"\0" * 64, {"Content-Type": "image/png"}),
        "unsupported_content_type",
    ),
    "pdf": (respond(200, b"%PDF-1.7 ...", {"Content-Type": "application/pdf"}), "unsupported_content_type"),
    "empty": (respond(200, b"", {"Content-Type": "application/rss+xml"}), "empty_body"),
    "blank": (respond(200, b"  \n\t ", {"Content-Type": "application/rss+xml"}), "empty_body"),
    "loop-a": (respond(302, headers={"Location": "/bad/loop-b"}), "redirect_loop"),
    "loop-b": (respond(302, headers={"Location": "/bad/loop-a"}), "redirect_loop"),
    "server-error": (respond(503, b"down"), "http_503"),
    "json-not-a-feed": (
        respond(200, b'{"status": "ok", "data": []}', {"Content-Type": "application/json"}),
        "not_a_feed",
    ),
    "json-truncated": (
        respond(200, b'{"version": "https://jsonfeed.org/version/1.1", "items": [{"url', {}),
        "malformed_json_feed",
    ),
    "json-not-utf8": (
        respond(200, b'{"version": "https://jsonfeed.org/version/1", "title": "\xff\xfe", "items": []}', {}),
        "malformed_json_feed",
    ),
}


def test_bad_feeds_each_get_a_counted_reason_and_the_poller_carries_on(site, tmp_path):
    for name, (handler, _) in BAD_FEEDS.items():
        site.add_route(f"/bad/{name}", handler)
    bad = [FeedSpec(url=site.url(f"bad/{name}"), publisher="bad") for name in BAD_FEEDS]
    good = FeedSpec(url=site.url("feeds/world-en.rss"), publisher="demo")

    async def scenario(poller: Poller) -> tuple[list[PollResult], StageStats]:
        results = list(await asyncio.gather(*(poller.poll(feed) for feed in [*bad, good])))
        poller.emitted(results)
        poller.record(results, 1000.0)
        return results, poller.stats

    results, stats = with_poller(StateStore(tmp_path / "s.sqlite"), scenario)
    reasons = {result.feed.url.rsplit("/", 1)[1]: result.reason for result in results[:-1]}
    assert reasons == {name: reason for name, (_, reason) in BAD_FEEDS.items()}
    assert results[-1].outcome == "new_items"
    expected: dict[str, int] = {}
    for _, reason in BAD_FEEDS.values():
        expected[reason] = expected.get(reason, 0) + 1
    assert stats.as_dict()["failed"] == expected


def test_registry_round_trips_and_validates(tmp_path: Path):
    registry = (
        FeedRegistry()
        .with_feed(RSS)
        .with_feed(FeedSpec(url="https://b.example/atom", kind="atom", publisher="b"))
    )
    registry.save(tmp_path / "feeds.yaml")
    assert FeedRegistry.load(tmp_path / "feeds.yaml") == registry
    assert FeedRegistry.load(tmp_path / "feeds.yaml").without(RSS.url).feeds[0].kind == "atom"
    with pytest.raises(ValueError, match="min_interval_s"):
        FeedSpec(url="x", publisher="p", min_interval_s=10, max_interval_s=5)
    default = FeedRegistry.load(Path(__file__).resolve().parents[1] / "config" / "feeds.yaml")
    assert any(feed.publisher == "stern.de" for feed in default.feeds)


def test_state_files_from_before_revisions_are_upgraded(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE seen_item (article_id TEXT PRIMARY KEY, canonical_url TEXT NOT NULL,"
        " feed_url TEXT NOT NULL, first_seen REAL NOT NULL)"
    )
    db.execute("INSERT INTO seen_item VALUES ('a1', 'https://x/a', 'https://x/feed', 0)")
    db.commit()
    db.close()
    known = StateStore(path).known(["a1", "a2"], "https://x/feed")
    assert set(known) == {"a1"} and known["a1"].revision == 1 and known["a1"].fingerprint is None


def test_http_dates_are_not_confused_with_item_dates():
    """An RFC 822 date in RSS and its ISO form in Atom give the same fingerprint."""
    when = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
    rss_doc = (
        '<rss version="2.0"><channel><item><link>https://x/a</link>'
        f"<pubDate>{format_datetime(when)}</pubDate></item></channel></rss>"
    ).encode()
    [rss_item] = parse_feed(rss_doc, {}, RSS)
    [atom_item] = parse_feed(atom([("https://x/a", "A", when)]), {}, RSS)
    assert rss_item.published == when and atom_item.modified == when
    assert rss_item.fingerprint.startswith("h:") and atom_item.fingerprint == f"t:{when.timestamp():.0f}"


def test_rechecks_ask_for_unchanged_articles_again_a_bounded_number_of_times(site, tmp_path):
    store = StateStore(tmp_path / "s.sqlite")
    feed = FeedSpec(url=site.url("feeds/world-en.rss"), publisher="demo", language="en")
    [first] = poll_and_emit(store, [feed])
    assert first.links

    async def scenario(poller: Poller) -> list[list[PollResult]]:
        now = time.time()
        rounds = [poller.due_rechecks([feed], now + 60)]  # too early
        for hours in (1.1, 2.2, 3.3):  # due, due again (2 allowed), then used up
            due = poller.due_rechecks([feed], now + hours * 3600)
            assert poller.due_rechecks([feed], now + hours * 3600) == []  # claimed until emitted
            poller.emitted(due, now + hours * 3600)
            poller.record(due, now)
            rounds.append(due)
        return rounds

    too_early, once, twice, used_up = with_poller(store, scenario, recheck_after_s=3600, max_rechecks=2)
    assert too_early == [] and used_up == []
    for due in (once, twice):
        [result] = due
        assert result.outcome == "recheck"
        assert {link.article_id for link in result.links} == {link.article_id for link in first.links}
        assert all(
            link.recheck and link.revision == 1 and link.language_hint == "en" for link in result.links
        )
    # rechecks leave the feed's schedule and its item fingerprints alone: a later poll emits nothing
    assert store.feed(feed.url) is not None
    [later] = poll_and_emit(store, [feed], now=5000.0)
    assert later.links == ()


def test_recheck_backoff_waits_longer_before_each_further_recheck(site, tmp_path):
    store = StateStore(tmp_path / "s.sqlite")
    feed = FeedSpec(url=site.url("feeds/world-en.rss"), publisher="demo", language="en")
    [first] = poll_and_emit(store, [feed])

    async def scenario(poller: Poller) -> list[bool]:
        start, hour = time.time(), 3600.0
        due_at = []
        emitted = start
        # Waits of 1 h, 4 h and 16 h after each emission: probe just before and just after each.
        for wait in (1, 4, 16):
            early = bool(poller.due_rechecks([feed], emitted + (wait - 0.1) * hour))
            now = emitted + (wait + 0.1) * hour
            due = poller.due_rechecks([feed], now)
            poller.emitted(due, now)
            poller.record(due, start)
            due_at += [early, bool(due)]
            emitted = now
        return due_at

    due_at = with_poller(store, scenario, recheck_after_s=3600, max_rechecks=3, recheck_backoff=4.0)
    assert first.links and due_at == [False, True, False, True, False, True]
