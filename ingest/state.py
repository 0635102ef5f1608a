"""Durable poller state in SQLite: feed cursors and validators, and every article already emitted.

A restart reads this back, so it re-emits nothing old; marking an item as seen happens only after
Kafka acknowledged its link message, so a crash in between re-emits rather than loses.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
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
"""


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


class StateStore:
    """One SQLite file per poller; safe to share between threads of one process."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def feed(self, url: str) -> FeedState | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM feed_state WHERE url = ?",  # noqa: S608 - a constant column list
                (url,),
            ).fetchone()
        return FeedState(*row) if row else None

    def all_feeds(self) -> list[FeedState]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM feed_state"  # noqa: S608 - a constant column list
            ).fetchall()
        return [FeedState(*row) for row in rows]

    def save_feed(self, state: FeedState) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO feed_state VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    state.url,
                    state.etag,
                    state.last_modified,
                    state.content_hash,
                    state.interval_s,
                    state.next_poll_at,
                    state.consecutive_failures,
                    state.last_outcome,
                    state.last_error,
                    state.last_polled_at,
                    state.last_success_at,
                    state.items_emitted,
                ),
            )

    def unseen(self, article_ids: Iterable[str]) -> set[str]:
        ids = list(dict.fromkeys(article_ids))
        if not ids:
            return set()
        with self._lock:
            seen: set[str] = set()
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                query = f"SELECT article_id FROM seen_item WHERE article_id IN ({marks})"  # noqa: S608 - only "?" placeholders are interpolated
                rows = self._db.execute(query, chunk)
                seen.update(row[0] for row in rows)
        return set(ids) - seen

    def mark_seen(self, items: Iterable[tuple[str, str, str]]) -> None:
        """Record (article_id, canonical_url, feed_url) triples as emitted."""
        now = datetime.now(UTC).timestamp()
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR IGNORE INTO seen_item VALUES (?, ?, ?, ?)",
                [(aid, url, feed, now) for aid, url, feed in items],
            )
            self._db.execute("COMMIT")
