"""Feed parsing and the poller's bookkeeping (no Kafka: the poller only returns links)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.feeds import FeedRegistry, FeedSpec
from ingest.http import HttpClient
from ingest.poller import FeedParseError, Poller, parse_feed
from ingest.state import StateStore
from newsflow.demo.server import SiteServer, demo_site_root
from newsflow.loop import StageStats
from newsflow.settings import HttpSettings

RSS = FeedSpec(url="https://example.org/feed", publisher="example")


def test_every_reference_feed_parses_or_fails_with_a_reason(shared_data: Path):
    files = [p for p in (shared_data / "feeds").rglob("*") if p.suffix in {".xml", ".rss", ".atom", ".rdf"}]
    assert len(files) > 500
    outcomes: dict[str, int] = {}
    for path in files:
        try:
            items = parse_feed(path.read_bytes(), "application/xml", RSS)
            key = "items" if items else "empty"
        except FeedParseError as exc:
            key = exc.reason
        outcomes[key] = outcomes.get(key, 0) + 1
    assert outcomes["items"] > 100
    assert set(outcomes) <= {"items", "empty", "not_a_feed", "malformed_feed"}


def test_html_instead_of_a_feed_is_named_as_such():
    html = b"<!doctype html><html><head><title>Home</title></head><body><p>Welcome</p></body></html>"
    with pytest.raises(FeedParseError) as error:
        parse_feed(html, "text/html", RSS)
    assert error.value.reason == "not_a_feed"


def test_news_sitemaps_yield_their_urls():
    sitemap = b"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">
  <url><loc>https://example.org/a</loc><news:news><news:publication_date>2026-11-27T10:00:00+01:00</news:publication_date>
  <news:title>A title</news:title></news:news></url>
  <url><loc>https://example.org/b</loc><lastmod>2026-11-26</lastmod></url>
</urlset>"""
    items = parse_feed(sitemap, "application/xml", FeedSpec(url="x", kind="news-sitemap", publisher="p"))
    assert [(url, title) for url, title, _ in items] == [
        ("https://example.org/a", "A title"),
        ("https://example.org/b", None),
    ]
    assert items[0][2] is not None and items[0][2].utcoffset() is not None


def test_poller_emits_new_items_once_and_adapts_intervals(tmp_path: Path):
    with SiteServer(demo_site_root()) as site, HttpClient(HttpSettings(allowed_hosts=("127.0.0.1",))) as http:
        store = StateStore(tmp_path / "state.sqlite")
        stats = StageStats("poll")
        poller = Poller(store, http, stats)
        feed = FeedSpec(
            url=site.url("feeds/world-en.rss"), publisher="demo", min_interval_s=60, max_interval_s=600
        )
        first = poller.poll(feed)
        assert first.outcome == "new_items"
        assert len(first.links) >= 5
        assert all("utm_" not in link.canonical_url and "#" not in link.canonical_url for link in first.links)
        poller.emitted(first)
        poller.record(first, now=1000.0)
        state = store.feed(feed.url)
        assert state is not None and state.interval_s == 60 and state.next_poll_at == 1060.0

        second = poller.poll(feed)  # conditional GET: 304
        assert (second.outcome, second.reason) == ("not_modified", "http_304")
        poller.record(second, now=2000.0)
        assert store.feed(feed.url).interval_s == 90  # type: ignore[union-attr]

        # A restart (new store object on the same file) re-emits nothing old.
        restarted = Poller(StateStore(tmp_path / "state.sqlite"), http, stats)
        fresh_fetch = restarted.poll(FeedSpec(url=site.url("feeds/world-en.rss?fresh=1"), publisher="demo"))
        assert fresh_fetch.outcome == "unchanged" and fresh_fetch.links == ()

        broken = FeedSpec(
            url=site.url("no-such-feed.xml"), publisher="demo", min_interval_s=60, max_interval_s=600
        )
        failed = poller.poll(broken)
        assert (failed.outcome, failed.reason) == ("failed", "http_404")
        poller.record(failed, now=1000.0)
        poller.record(failed, now=1000.0)
        broken_state = store.feed(broken.url)
        assert broken_state is not None
        assert broken_state.consecutive_failures == 2 and broken_state.next_poll_at == 1000.0 + 240
        assert stats.as_dict()["failed"] == {"http_404": 2}


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
