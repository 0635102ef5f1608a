"""Durable poller state in SQLite: feed cursors and validators, every article already emitted with
its revision, and each feed's last fingerprint of each item.

A restart reads this back, so it re-emits nothing old; marking an item as seen happens only after
Kafka acknowledged its link message, so a crash in between re-emits rather than loses. Revision
numbers live here too, so a changed article after a restart still gets the next number, not 1.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import astuple, dataclass
from datetime import UTC, datetime
from pathlib import Path

_COLUMNS = (
    "url, etag, last_modified, content_hash, interval_s, next_poll_at, consecutive_failures,"
    " last_outcome, last_error, last_polled_at, last_success_at, items_emitted"
)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS feed_state (
    url TEXT PRIMARY KEY,
    etag TEXT,
    last_modified TEXT,
    content_hash TEXT,
    interval_s REAL NOT NULL,
    next_poll_at REAL NOT NULL,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    last_outcome TEXT,
    last_error TEXT,
    last_polled_at REAL,
    last_success_at REAL,
    items_emitted INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS seen_item (
    article_id TEXT PRIMARY KEY,
    canonical_url TEXT NOT NULL,
    feed_url TEXT NOT NULL,
    first_seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS item_version (
    article_id TEXT NOT NULL,
    feed_url TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    PRIMARY KEY (article_id, feed_url)
);
"""
_CHUNK = 500  # SQLite's default limit on host parameters is 999


def _chunks(values: Sequence[str]) -> Iterator[tuple[list[str], str]]:
    """``values`` in slices small enough for one statement, each with its "?,?,..." placeholders."""
    for start in range(0, len(values), _CHUNK):
        chunk = list(values[start : start + _CHUNK])
        yield chunk, ",".join("?" * len(chunk))


@dataclass(frozen=True)
class FeedState:
    url: str
    etag: str | None
    last_modified: str | None
    content_hash: str | None
    interval_s: float
    next_poll_at: float
    consecutive_failures: int
    last_outcome: str | None
    last_error: str | None
    last_polled_at: float | None
    last_success_at: float | None
    items_emitted: int


@dataclass(frozen=True)
class SeenItem:
    """An emitted article version: what a later poll compares against. ``recheck``: the emission
    asked for the page again though its feed item had not changed."""

    article_id: str
    canonical_url: str
    feed_url: str
    revision: int
    fingerprint: str
    recheck: bool = False
    emitted: bool = True  # False: only this feed's fingerprint of an article emitted from another feed


@dataclass(frozen=True)
class KnownItem:
    """An article seen before: its latest revision and this feed's last fingerprint of it, if any."""

    revision: int
    fingerprint: str | None


class StateStore:
    """One SQLite file per poller; safe to share between threads of one process."""

    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL survives a process crash; only a power cut may lose the last transaction,
        # which re-emits (never loses) links.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(seen_item)")}
        if "revision" not in columns:  # state files written before revisions existed
            self._db.execute("ALTER TABLE seen_item ADD COLUMN revision INTEGER NOT NULL DEFAULT 1")
        if "last_emitted" not in columns:  # ... and before rechecks
            self._db.execute("ALTER TABLE seen_item ADD COLUMN last_emitted REAL")
            self._db.execute("ALTER TABLE seen_item ADD COLUMN rechecks INTEGER NOT NULL DEFAULT 0")
        self._db.execute("CREATE INDEX IF NOT EXISTS seen_item_first_seen ON seen_item (first_seen)")
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def feed(self, url: str) -> FeedState | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM feed_state WHERE url = ?",  # noqa: S608 - a constant column list
                (url,),
            ).fetchone()
        return FeedState(*row) if row else None

    def all_feeds(self) -> dict[str, FeedState]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM feed_state"  # noqa: S608 - a constant column list
            ).fetchall()
        return {row[0]: FeedState(*row) for row in rows}

    def feeds(self, urls: Iterable[str]) -> dict[str, FeedState]:
        """The states of these feeds (those polled before)."""
        wanted = list(dict.fromkeys(urls))
        found: dict[str, FeedState] = {}
        with self._lock:
            for chunk, marks in _chunks(wanted):
                query = f"SELECT {_COLUMNS} FROM feed_state WHERE url IN ({marks})"  # noqa: S608 - constant columns and "?" placeholders
                found.update((row[0], FeedState(*row)) for row in self._db.execute(query, chunk))
        return found

    def save_feeds(self, states: Sequence[FeedState]) -> None:
        """One transaction for a whole batch: thousands of feeds per pass stay cheap."""
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO feed_state VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [astuple(state) for state in states],
            )

    def known(self, article_ids: Iterable[str], feed_url: str) -> dict[str, KnownItem]:
        """The already-emitted articles among ``article_ids``, with ``feed_url``'s fingerprint of each."""
        ids = list(dict.fromkeys(article_ids))
        found: dict[str, KnownItem] = {}
        with self._lock:
            for chunk, marks in _chunks(ids):
                query = (
                    "SELECT s.article_id, s.revision, v.fingerprint FROM seen_item s"  # noqa: S608 - only "?" placeholders are interpolated
                    " LEFT JOIN item_version v ON v.article_id = s.article_id AND v.feed_url = ?"
                    f" WHERE s.article_id IN ({marks})"
                )
                for aid, revision, fingerprint in self._db.execute(query, [feed_url, *chunk]):
                    found[aid] = KnownItem(revision, fingerprint)
        return found

    def mark_seen(self, items: Iterable[SeenItem], now: float | None = None) -> None:
        """Record emitted article versions (and each feed's fingerprint of them) for good."""
        now = datetime.now(UTC).timestamp() if now is None else now
        rows = list(items)
        with self._transaction() as db:
            # A recheck counts up; any other emission (a new revision) starts the count again.
            db.executemany(
                "INSERT INTO seen_item (article_id, canonical_url, feed_url, first_seen, revision,"
                " last_emitted, rechecks) VALUES (:aid, :url, :feed, :now, :revision, :now, 0)"
                " ON CONFLICT(article_id) DO UPDATE SET revision = max(revision, excluded.revision),"
                " last_emitted = CASE WHEN :emitted THEN :now ELSE last_emitted END,"
                " rechecks = CASE WHEN NOT :emitted THEN rechecks WHEN :recheck THEN rechecks + 1 ELSE 0 END",
                [
                    {
                        "aid": i.article_id,
                        "url": i.canonical_url,
                        "feed": i.feed_url,
                        "now": now,
                        "revision": i.revision,
                        "emitted": i.emitted,
                        "recheck": i.recheck,
                    }
                    for i in rows
                ],
            )
            db.executemany(  # a recheck leaves the feed's fingerprint of the item as it was
                "INSERT OR REPLACE INTO item_version VALUES (?, ?, ?)",
                [(i.article_id, i.feed_url, i.fingerprint) for i in rows if not i.recheck],
            )

    def due_rechecks(
        self, emitted_before: Sequence[float], first_seen_after: float, feeds: list[str], limit: int
    ) -> list[SeenItem]:
        """Articles of ``feeds`` first seen after ``first_seen_after`` and, rechecked k times since their
        last change, last emitted before ``emitted_before[k]`` (k beyond the list: done)."""
        due: list[SeenItem] = []
        per_count = " OR ".join(
            ["(rechecks = ? AND coalesce(last_emitted, first_seen) <= ?)"] * len(emitted_before)
        )
        counts = [value for k, before in enumerate(emitted_before) for value in (k, before)]
        with self._lock:
            for chunk, marks in _chunks(feeds):
                query = (
                    "SELECT article_id, canonical_url, feed_url, revision FROM seen_item"  # noqa: S608 - only "?" placeholders are interpolated
                    f" WHERE feed_url IN ({marks}) AND first_seen > ? AND ({per_count})"
                    " ORDER BY first_seen LIMIT ?"
                )
                params = [*chunk, first_seen_after, *counts, limit - len(due)]
                due += [
                    SeenItem(aid, url, feed, revision, "", recheck=True)
                    for aid, url, feed, revision in self._db.execute(query, params)
                ]
                if len(due) >= limit:
                    break
        return due
