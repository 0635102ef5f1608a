"""Feed polling: which feeds are due, what is new or changed in them, and how often to come back.

The poller emits ``LinkMessage``s, never article text: fetching and extraction run in the fetch
stage behind Kafka, where the shared loop gives them retries and dead letters.

An item is new when its article id was never emitted; it is a *revision* when the feed that
listed it before now lists it with a later modified date (or, without dates, changed title and
summary). Revisions are compared per feed, so the same article in two feeds with different
dates is still fetched once.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import feedparser
from lxml import etree

from ingest.feeds import FeedSpec
from ingest.http import AsyncHttpClient, FetchResult, Validators
from ingest.politeness import HostLimiter, RobotsCache
from ingest.state import FeedState, KnownItem, SeenItem, StateStore
from ingest.urls import article_id, canonicalize_url
from newsflow.errors import StageError
from newsflow.loop import StageStats
from newsflow.schemas import LinkMessage

log = logging.getLogger(__name__)

_FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, "
    "text/xml;q=0.9, */*;q=0.5"
)
_SITEMAP_NS = {
    "sm": "http://www.sitemaps.org/schemas/sitemap/0.9",
    "news": "http://www.google.com/schemas/sitemap-news/0.9",
}
# Content types that are certainly not a feed; anything else (text/html too) is given to the parser.
_NOT_FEED_PREFIXES = ("image/", "audio/", "video/", "font/", "application/pdf", "application/zip")
_NOT_FEED_TYPES = {"application/gzip", "application/octet-stream"}
_JSON_FEED_VERSION = "https://jsonfeed.org/version/"
MAX_FAILURE_BACKOFF_S = 6 * 3600.0


@dataclass(frozen=True)
class FeedItem:
    link: str
    title: str | None
    published: datetime | None
    modified: datetime | None = None
    digest: str = ""

    @property
    def fingerprint(self) -> str:
        """What tells one version of the item from the next: its modified date, else its text."""
        if self.modified is not None:
            return f"t:{self.modified.timestamp():.0f}"
        return f"h:{self.digest}"


@dataclass(frozen=True)
class PollResult:
    feed: FeedSpec
    outcome: str  # new_items | unchanged | not_modified | failed | recheck
    reason: str
    links: tuple[LinkMessage, ...] = ()
    validators: Validators | None = None
    content_hash: str | None = None
    items: int = 0  # items the feed listed (before dedupe)
    fingerprints: tuple[str, ...] = ()  # parallel to links
    skipped: dict[str, int] = field(default_factory=dict)  # links not emitted, by reason


class FeedParseError(StageError):
    """The document is not a feed we can read (HTML page, broken XML without entries, ...)."""


def _stamp(entry: Any, key: str) -> datetime | None:
    # dict.get: FeedParserDict.get maps updated to published with a deprecation warning.
    value = dict.get(entry, key)
    return datetime.fromtimestamp(calendar.timegm(value), tz=UTC) if value else None


def _digest(*parts: str | None) -> str:
    return hashlib.sha256("\x1f".join(" ".join((p or "").split()) for p in parts).encode()).hexdigest()[:32]


def parse_feed(body: bytes, headers: dict[str, str], feed: FeedSpec) -> list[FeedItem]:
    """The items of a feed or sitemap; raises ``FeedParseError`` when nothing is readable.

    feedparser gets the raw bytes and the response headers, so it decides the encoding from the
    HTTP charset, the XML declaration and a BOM itself (and says when they disagree).
    """
    if feed.kind in {"sitemap", "news-sitemap"}:
        return _parse_sitemap(body)
    if body.lstrip()[:1] == b"{":
        return _parse_json_feed(body, headers.get("content-location", ""))
    response_headers = {"content-type": "application/xml", **headers}
    parsed = feedparser.parse(body, response_headers=response_headers)
    base = headers.get("content-location", "")
    items: list[FeedItem] = []
    for entry in parsed.get("entries", []):
        link = entry.get("link") or next(
            (lnk.get("href") for lnk in entry.get("links", []) if lnk.get("rel") == "alternate"), None
        )
        if not link:
            continue
        content = " ".join(str(part.get("value", "")) for part in entry.get("content", []))
        items.append(
            FeedItem(
                link=urljoin(base, str(link)),
                title=entry.get("title"),
                published=_stamp(entry, "published_parsed") or _stamp(entry, "updated_parsed"),
                modified=_stamp(entry, "updated_parsed"),
                digest=_digest(entry.get("title"), entry.get("summary"), content),
            )
        )
    if not items and parsed.get("bozo"):
        # Broken and nothing usable in it; a broken feed that still yields items is read as far as it goes.
        reason = "not_a_feed" if not parsed.get("version") else "malformed_feed"
        raise FeedParseError(reason, str(parsed.get("bozo_exception", ""))[:300])
    return items


def _parse_json_feed(body: bytes, base: str) -> list[FeedItem]:
    """A JSON Feed (jsonfeed.org, 1.0 and 1.1): JSON is UTF-8 by definition (RFC 8259), so bytes that
    are not are a broken feed, as is JSON that is not a JSON Feed."""
    try:
        document = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FeedParseError("malformed_json_feed", str(exc)[:300]) from exc
    if not isinstance(document, dict) or not str(document.get("version", "")).startswith(_JSON_FEED_VERSION):
        raise FeedParseError("not_a_feed", "JSON without a jsonfeed.org version")
    entries = document.get("items")
    if not isinstance(entries, list):
        raise FeedParseError("malformed_json_feed", "items is not a list")
    base = base or str(document.get("feed_url") or document.get("home_page_url") or "")
    items: list[FeedItem] = []
    for entry in entries:
        link = entry.get("url") or entry.get("external_url") if isinstance(entry, dict) else None
        if not isinstance(link, str) or not link.strip():
            continue
        title = entry.get("title") if isinstance(entry.get("title"), str) else None
        published = _iso_date(entry.get("date_published"))
        modified = _iso_date(entry.get("date_modified"))
        text = [entry.get(key) for key in ("summary", "content_text", "content_html")]
        items.append(
            FeedItem(
                link=urljoin(base, link.strip()),
                title=title,
                published=published or modified,
                modified=modified,
                digest=_digest(title, *(part if isinstance(part, str) else None for part in text)),
            )
        )
    return items


def _parse_sitemap(body: bytes) -> list[FeedItem]:
    try:
        root = etree.fromstring(
            body, parser=etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
        )
    except etree.XMLSyntaxError as exc:
        raise FeedParseError("malformed_sitemap", str(exc)) from exc
    items: list[FeedItem] = []
    for url in root.iterfind("sm:url", _SITEMAP_NS):
        loc = url.findtext("sm:loc", namespaces=_SITEMAP_NS)
        if not loc:
            continue
        title = url.findtext("news:news/news:title", namespaces=_SITEMAP_NS)
        published = _iso_date(url.findtext("news:news/news:publication_date", namespaces=_SITEMAP_NS))
        modified = _iso_date(url.findtext("sm:lastmod", namespaces=_SITEMAP_NS))
        items.append(
            FeedItem(loc.strip(), title, published or modified, modified or published, _digest(title))
        )
    return items


def _iso_date(stamp: object) -> datetime | None:
    """An ISO 8601 / RFC 3339 date (sitemaps, JSON Feed); naive ones are taken as UTC; anything but a
    non-empty string (a JSON number, null) is no date."""
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        parsed = datetime.fromisoformat(stamp.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _is_newer(fingerprint: str, before: str) -> bool:
    """A later modified date, or (for items without dates) different text. A switch between the two
    kinds (a feed starting to send dates) is a format change, not an article change."""
    if fingerprint[:2] != before[:2]:
        return False
    if fingerprint.startswith("t:"):
        return float(fingerprint[2:]) > float(before[2:])
    return fingerprint != before


class Poller:
    """Turns one feed fetch into new links and revisions, and keeps each feed's schedule."""

    def __init__(
        self,
        store: StateStore,
        http: AsyncHttpClient,
        stats: StageStats,
        max_items_per_feed: int = 200,
        robots: RobotsCache | None = None,
        hosts: HostLimiter | None = None,
        recheck_after_s: float = 0.0,
        max_rechecks: int = 1,
        recheck_backoff: float = 1.0,
    ) -> None:
        self.store = store
        self.recheck_after_s = recheck_after_s
        # The wait before each recheck of a version, from its last emission: edits come mostly early.
        self.recheck_waits = [recheck_after_s * recheck_backoff**k for k in range(max_rechecks)]
        self.http = http
        self.stats = stats
        self.max_items_per_feed = max_items_per_feed
        self.robots = robots
        self.hosts = hosts or HostLimiter(per_host=1_000_000, min_delay_s=0.0)
        # Claims of links handed out but not yet acknowledged; one event loop, so no lock needed.
        self._in_flight: set[str] = set()

    def due(self, feeds: Iterable[FeedSpec], now: float) -> list[FeedSpec]:
        states = self.store.all_feeds()
        due: list[FeedSpec] = []
        for feed in feeds:
            state = states.get(feed.url)
            if state is None or state.next_poll_at <= now:
                due.append(feed)
        return due

    async def poll(self, feed: FeedSpec) -> PollResult:
        state = self.store.feed(feed.url)
        validators = Validators(state.etag, state.last_modified) if state else None
        refusal = await self._robots_refusal(feed.url)
        if refusal:
            return PollResult(feed, "failed", refusal)
        try:
            delay = self.robots.crawl_delay(feed.url) if self.robots else None
            async with self.hosts.slot(feed.url, delay):
                fetched = await self.http.get(feed.url, validators=validators, accept=_FEED_ACCEPT)
        except StageError as exc:
            return PollResult(feed, "failed", exc.reason)
        read = self._read(feed, state, validators, fetched)
        if isinstance(read, PollResult):
            return read
        items, new_validators, content_hash = read
        skipped: Counter[str] = Counter()
        if len(items) > self.max_items_per_feed:
            skipped["over_item_limit"] = len(items) - self.max_items_per_feed
        candidates = await self._candidates(feed, items[: self.max_items_per_feed], skipped)
        links, fingerprints = self._claim(feed, candidates)
        outcome = "new_items" if links else "unchanged"
        return PollResult(
            feed,
            outcome,
            outcome,
            links,
            new_validators,
            content_hash,
            items=len(items),
            fingerprints=fingerprints,
            skipped=dict(skipped),
        )

    def _read(
        self, feed: FeedSpec, state: FeedState | None, validators: Validators | None, fetched: FetchResult
    ) -> PollResult | tuple[list[FeedItem], Validators, str]:
        """The feed's items, or the result that ends this poll early (unchanged, unreadable)."""
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
        content_type = fetched.content_type
        if content_type.startswith(_NOT_FEED_PREFIXES) or content_type in _NOT_FEED_TYPES:
            return PollResult(feed, "failed", "unsupported_content_type")
        headers = {"content-location": fetched.final_url, **fetched.headers}
        try:
            items = parse_feed(fetched.body, headers, feed)
        except FeedParseError as exc:
            return PollResult(feed, "failed", exc.reason)
        return items, new_validators, content_hash

    async def _candidates(
        self, feed: FeedSpec, items: list[FeedItem], skipped: Counter[str]
    ) -> dict[str, tuple[LinkMessage, str]]:
        now = datetime.now(UTC)
        candidates: dict[str, tuple[LinkMessage, str]] = {}
        for item in items:
            canonical = canonicalize_url(item.link)
            aid = article_id(canonical)
            if aid in candidates:
                continue
            refusal = await self._robots_refusal(item.link)
            if refusal:
                skipped[refusal] += 1
                continue
            link = LinkMessage(
                url=item.link,
                canonical_url=canonical,
                article_id=aid,
                feed_url=feed.url,
                publisher=feed.publisher,
                language_hint=feed.language,
                title=item.title,
                published_at=item.published,
                modified_at=item.modified,
                discovered_at=now,
            )
            candidates[aid] = (link, item.fingerprint)
        return candidates

    async def _robots_refusal(self, url: str) -> str | None:
        """Why robots.txt keeps us from ``url`` (a feed or an article), or None when it may be fetched."""
        if self.robots is None:
            return None
        try:
            return None if await self.robots.allowed(url) else "robots_disallowed"
        except StageError as exc:
            return exc.reason

    def _claim(
        self, feed: FeedSpec, candidates: dict[str, tuple[LinkMessage, str]]
    ) -> tuple[tuple[LinkMessage, ...], tuple[str, ...]]:
        """New articles and revisions to emit, claimed until emitted: the same article in two feeds
        polled at once goes out once."""
        open_ids = [aid for aid in candidates if aid not in self._in_flight]
        known = self.store.known(open_ids, feed.url)
        links: list[LinkMessage] = []
        fingerprints: list[str] = []
        first_sightings: list[SeenItem] = []
        for aid in open_ids:
            link, fingerprint = candidates[aid]
            before: KnownItem | None = known.get(aid)
            if before is None:
                revision = 1
            elif before.fingerprint is None:
                # Known from another feed: remember this feed's version, emit nothing.
                first_sightings.append(
                    SeenItem(aid, link.canonical_url, feed.url, before.revision, fingerprint, emitted=False)
                )
                continue
            elif _is_newer(fingerprint, before.fingerprint):
                revision = before.revision + 1
            else:
                continue
            links.append(link.model_copy(update={"revision": revision}))
            fingerprints.append(fingerprint)
            self._in_flight.add(aid)
        if first_sightings:
            self.store.mark_seen(first_sightings)
        return tuple(links), tuple(fingerprints)

    def due_rechecks(self, feeds: Iterable[FeedSpec], now: float, limit: int = 1000) -> list[PollResult]:
        """Links to fetch again, one result per feed: articles of these feeds rechecked k < ``max_rechecks``
        times since their last change and emitted at least ``recheck_after_s * recheck_backoff**k`` ago
        (sites edit articles without touching the feed item). Claimed until emitted or released."""
        if self.recheck_after_s <= 0:
            return []
        by_url = {feed.url: feed for feed in feeds}
        window = sum(self.recheck_waits) + self.recheck_after_s  # first sightings older than this are done
        due = self.store.due_rechecks(
            [now - wait for wait in self.recheck_waits], now - window, list(by_url), limit
        )
        links: dict[str, list[LinkMessage]] = {}
        discovered = datetime.fromtimestamp(now, tz=UTC)
        for item in due:
            if item.article_id in self._in_flight:
                continue
            feed = by_url[item.feed_url]
            links.setdefault(feed.url, []).append(
                LinkMessage(
                    url=item.canonical_url,
                    canonical_url=item.canonical_url,
                    article_id=item.article_id,
                    feed_url=feed.url,
                    publisher=feed.publisher,
                    language_hint=feed.language,
                    discovered_at=discovered,
                    revision=item.revision,
                    recheck=True,
                )
            )
            self._in_flight.add(item.article_id)
        return [
            PollResult(
                by_url[url], "recheck", "recheck_due", links=tuple(found), fingerprints=("",) * len(found)
            )
            for url, found in links.items()
        ]

    def emitted(self, results: Iterable[PollResult], now: float | None = None) -> None:
        """Call once Kafka acknowledged the results' links: they are seen for good (as of ``now``,
        default the current time)."""
        done = list(results)
        seen = [
            SeenItem(
                link.article_id, link.canonical_url, link.feed_url, link.revision, fingerprint, link.recheck
            )
            for result in done
            for link, fingerprint in zip(result.links, result.fingerprints, strict=True)
        ]
        self.store.mark_seen(seen, now)
        self.release(done)

    def release(self, results: Iterable[PollResult]) -> None:
        """Drop the results' claims without marking them seen (emitting failed; a later poll retries)."""
        for result in results:
            self._in_flight.difference_update(link.article_id for link in result.links)

    def record(self, results: Iterable[PollResult], now: float) -> None:
        """Store validators and adapt each interval: faster while a feed yields news, slower when idle,
        exponential backoff while it fails."""
        done = list(results)
        polls = [result for result in done if result.outcome != "recheck"]
        states = self.store.feeds(result.feed.url for result in polls)
        updated = [self._next_state(result, states.get(result.feed.url), now) for result in polls]
        self.store.save_feeds(updated)
        for result in done:
            # a poll counts once; rechecks count their links (one result holds a feed's due rechecks)
            self.stats.add(
                result.outcome, result.reason, len(result.links) if result.outcome == "recheck" else 1
            )
            for reason, count in result.skipped.items():
                self.stats.add("skipped", reason, count)
            if result.outcome == "failed":
                log.warning("feed poll failed", extra={"feed": result.feed.url, "reason": result.reason})

    @staticmethod
    def _next_state(result: PollResult, state: FeedState | None, now: float) -> FeedState:
        feed = result.feed
        state = state or FeedState(
            feed.url, None, None, None, feed.min_interval_s, now, 0, None, None, None, None, 0
        )
        interval = min(max(state.interval_s, feed.min_interval_s), feed.max_interval_s)
        if result.outcome == "failed":
            failures = state.consecutive_failures + 1
            delay = min(feed.min_interval_s * (2**failures), max(feed.max_interval_s, MAX_FAILURE_BACKOFF_S))
            return replace(
                state,
                consecutive_failures=failures,
                next_poll_at=now + delay,
                last_outcome="failed",
                last_error=result.reason,
                last_polled_at=now,
            )
        if result.outcome == "new_items":
            interval = max(feed.min_interval_s, interval / 2)
        else:
            interval = min(feed.max_interval_s, interval * 1.5)
        validators = result.validators or Validators()
        return replace(
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
