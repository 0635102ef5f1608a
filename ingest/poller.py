"""Feed polling: which feeds are due, what is new in them, and how often to come back.

The poller emits ``LinkMessage``s, never article text: fetching and extraction run in the fetch
stage behind Kafka, where the shared loop gives them retries and dead letters.
"""

from __future__ import annotations

import calendar
import hashlib
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import feedparser
from lxml import etree

from ingest.feeds import FeedSpec
from ingest.http import HttpClient, Validators
from ingest.state import FeedState, StateStore
from ingest.urls import article_id, canonicalize_url
from newsflow.errors import StageError
from newsflow.loop import StageStats
from newsflow.schemas import LinkMessage

log = logging.getLogger(__name__)

_FEED_ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
_SITEMAP_NS = {
    "sm": "http://www.sitemaps.org/schemas/sitemap/0.9",
    "news": "http://www.google.com/schemas/sitemap-news/0.9",
}
MAX_FAILURE_BACKOFF_S = 6 * 3600.0


@dataclass(frozen=True)
class PollResult:
    feed: FeedSpec
    outcome: str  # new_items | unchanged | not_modified | failed
    reason: str
    links: tuple[LinkMessage, ...] = ()
    validators: Validators | None = None
    content_hash: str | None = None


class FeedParseError(StageError):
    """The document is not a feed we can read (HTML page, broken XML without entries, ...)."""


def _entry_datetime(entry: Any) -> datetime | None:
    for key in ("published_parsed", "updated_parsed"):
        # dict.get: FeedParserDict.get maps updated to published with a deprecation warning.
        value = dict.get(entry, key)
        if value:
            return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
    return None


def parse_feed(
    body: bytes, content_type: str, feed: FeedSpec
) -> list[tuple[str, str | None, datetime | None]]:
    """(link, title, published) of each item; raises ``FeedParseError`` when nothing is readable."""
    if feed.kind in {"sitemap", "news-sitemap"}:
        return _parse_sitemap(body)
    parsed = feedparser.parse(body, response_headers={"content-type": content_type or "application/xml"})
    entries = parsed.get("entries", [])
    if not entries:
        if parsed.get("bozo"):
            reason = "not_a_feed" if not parsed.get("version") else "malformed_feed"
            raise FeedParseError(reason, str(parsed.get("bozo_exception", ""))[:300])
        return []
    items: list[tuple[str, str | None, datetime | None]] = []
    for entry in entries:
        link = entry.get("link") or next(
            (lnk.get("href") for lnk in entry.get("links", []) if lnk.get("rel") == "alternate"), None
        )
        if link:
            items.append((str(link), entry.get("title"), _entry_datetime(entry)))
    return items


def _parse_sitemap(body: bytes) -> list[tuple[str, str | None, datetime | None]]:
    try:
        root = etree.fromstring(
            body, parser=etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
        )
    except etree.XMLSyntaxError as exc:
        raise FeedParseError("malformed_sitemap", str(exc)) from exc
    items: list[tuple[str, str | None, datetime | None]] = []
    for url in root.iterfind("sm:url", _SITEMAP_NS):
        loc = url.findtext("sm:loc", namespaces=_SITEMAP_NS)
        if not loc:
            continue
        title = url.findtext("news:news/news:title", namespaces=_SITEMAP_NS)
        stamp = url.findtext("news:news/news:publication_date", namespaces=_SITEMAP_NS) or url.findtext(
            "sm:lastmod", namespaces=_SITEMAP_NS
        )
        published = None
        if stamp:
            try:
                published = datetime.fromisoformat(stamp.strip().replace("Z", "+00:00"))
            except ValueError:
                published = None
            if published and published.tzinfo is None:
                published = published.replace(tzinfo=UTC)
        items.append((loc.strip(), title, published))
    return items


class Poller:
    """Decides which feeds are due and turns one feed fetch into new links."""

    def __init__(
        self, store: StateStore, http: HttpClient, stats: StageStats, max_items_per_feed: int = 200
    ) -> None:
        self.store = store
        self.http = http
        self.stats = stats
        self.max_items_per_feed = max_items_per_feed
        self._claim_lock = threading.Lock()
        self._in_flight: set[str] = set()

    def due(self, feeds: Iterable[FeedSpec], now: float) -> list[FeedSpec]:
        due: list[FeedSpec] = []
        for feed in feeds:
            state = self.store.feed(feed.url)
            if state is None or state.next_poll_at <= now:
                due.append(feed)
        return due

    def poll(self, feed: FeedSpec) -> PollResult:
        state = self.store.feed(feed.url)
        validators = Validators(state.etag, state.last_modified) if state else None
        try:
            fetched = self.http.get(feed.url, validators=validators, accept=_FEED_ACCEPT)
        except StageError as exc:
            return PollResult(feed, "failed", exc.reason)
        if fetched.not_modified:
            return PollResult(feed, "not_modified", "http_304", validators=validators)
        new_validators = Validators(fetched.headers.get("etag"), fetched.headers.get("last-modified"))
        content_hash = hashlib.sha256(fetched.body).hexdigest()
        if state and state.content_hash == content_hash:
            # Servers that ignore conditional GET (or lie with fresh ETags) still send the same bytes.
            return PollResult(
                feed,
                "not_modified",
                "same_content_hash",
                validators=new_validators,
                content_hash=content_hash,
            )
        if not fetched.body.strip():
            return PollResult(feed, "failed", "empty_body")
        try:
            items = parse_feed(fetched.body, fetched.headers.get("content-type", ""), feed)
        except FeedParseError as exc:
            return PollResult(feed, "failed", exc.reason)
        links = self._new_links(feed, items[: self.max_items_per_feed])
        outcome = "new_items" if links else "unchanged"
        return PollResult(feed, outcome, outcome, links, new_validators, content_hash)

    def _new_links(
        self, feed: FeedSpec, items: list[tuple[str, str | None, datetime | None]]
    ) -> tuple[LinkMessage, ...]:
        now = datetime.now(UTC)
        candidates: dict[str, LinkMessage] = {}
        for link, title, published in items:
            canonical = canonicalize_url(link)
            aid = article_id(canonical)
            if aid in candidates:
                continue
            candidates[aid] = LinkMessage(
                url=link,
                canonical_url=canonical,
                article_id=aid,
                feed_url=feed.url,
                publisher=feed.publisher,
                language_hint=feed.language,
                title=title,
                published_at=published,
                discovered_at=now,
            )
        with self._claim_lock:
            # Claimed until emitted: the same article in two feeds polled at once goes out once.
            unseen = self.store.unseen(candidates) - self._in_flight
            self._in_flight.update(unseen)
        return tuple(msg for aid, msg in candidates.items() if aid in unseen)

    def emitted(self, result: PollResult) -> None:
        """Call once Kafka acknowledged a result's links: they are seen for good."""
        self.store.mark_seen((link.article_id, link.canonical_url, link.feed_url) for link in result.links)
        self.release(result)

    def release(self, result: PollResult) -> None:
        """Drop a result's claims without marking them seen (emitting failed; a later poll retries)."""
        with self._claim_lock:
            self._in_flight.difference_update(link.article_id for link in result.links)

    def record(self, result: PollResult, now: float) -> None:
        """Store validators and adapt the interval: faster while a feed yields news, slower when idle,
        exponential backoff while it fails."""
        feed = result.feed
        state = self.store.feed(feed.url) or FeedState(
            feed.url, None, None, None, feed.min_interval_s, now, 0, None, None, None, None, 0
        )
        interval = min(max(state.interval_s, feed.min_interval_s), feed.max_interval_s)
        if result.outcome == "failed":
            failures = state.consecutive_failures + 1
            delay = min(feed.min_interval_s * (2**failures), max(feed.max_interval_s, MAX_FAILURE_BACKOFF_S))
            updated = replace(
                state,
                consecutive_failures=failures,
                next_poll_at=now + delay,
                last_outcome="failed",
                last_error=result.reason,
                last_polled_at=now,
            )
        else:
            if result.outcome == "new_items":
                interval = max(feed.min_interval_s, interval / 2)
            else:
                interval = min(feed.max_interval_s, interval * 1.5)
            validators = result.validators or Validators()
            updated = replace(
                state,
                etag=validators.etag,
                last_modified=validators.last_modified,
                content_hash=result.content_hash or state.content_hash,
                interval_s=interval,
                next_poll_at=now + interval,
                consecutive_failures=0,
                last_outcome=result.outcome,
                last_error=None,
                last_polled_at=now,
                last_success_at=now,
                items_emitted=state.items_emitted + len(result.links),
            )
        self.store.save_feed(updated)
        self.stats.add(result.outcome, result.reason)
        if result.outcome == "failed":
            log.warning("feed poll failed", extra={"feed": feed.url, "reason": result.reason})
