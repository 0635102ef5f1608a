"""Story clustering: near-duplicate articles across sources share a ``story_id``.

MinHash over word 3-shingles estimates the Jaccard similarity of two texts; LSH (32 bands of 3 rows)
finds candidates without comparing against every stored article. An article joins the story of its
most similar candidate published within the time window when the estimate reaches the threshold,
otherwise it starts a story named after itself. Agency copies that outlets trim, re-headline or
extend keep most shingles and land in one story.

State lives in SQLite (``NEWSFLOW_ENRICH_STATE_DIR``), not only in memory: a restarted or re-deployed
enrich stage keeps assigning new copies to the stories it already indexed, and a re-delivered
article (at-least-once) gets the story it got the first time. Entries older than the window are
pruned, so the table stays bounded by the window's volume. One enrich process per state directory:
consumers of several partitions in one process share it; replicas on several hosts would each cluster
only what they see.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt

NUM_PERM = 96
BANDS = 32
ROWS = NUM_PERM // BANDS
SHINGLE = 3
_PRIME = np.uint64(4_294_967_311)  # the first prime above 2**32
_rng = np.random.default_rng(20_240_401)  # fixed: signatures must agree across processes and restarts
_A = _rng.integers(1, 2**31, NUM_PERM, dtype=np.uint64)
_B = _rng.integers(0, 2**31, NUM_PERM, dtype=np.uint64)
_WORD = re.compile(r"\w+")
PRUNE_EVERY = 500

Signature = npt.NDArray[np.uint64]


def shingles(text: str) -> set[bytes]:
    words = _WORD.findall(text.casefold())
    if len(words) < SHINGLE:
        return {" ".join(words).encode()} if words else set()
    return {" ".join(words[i : i + SHINGLE]).encode() for i in range(len(words) - SHINGLE + 1)}


def signature(text: str) -> Signature | None:
    """The MinHash signature of a text, or None when it has no words."""
    found = shingles(text)
    if not found:
        return None
    hashes = np.fromiter(
        (int.from_bytes(hashlib.blake2b(s, digest_size=4).digest(), "big") for s in found),
        dtype=np.uint64,
        count=len(found),
    )
    permuted = (hashes[None, :] * _A[:, None] + _B[:, None]) % _PRIME
    return np.asarray(permuted.min(axis=1), dtype=np.uint64)


def similarity(a: Signature, b: Signature) -> float:
    """Estimated Jaccard similarity of the two shingle sets."""
    return float(np.mean(a == b))


def _buckets(sig: Signature) -> list[tuple[int, int]]:
    return [
        (
            band,
            int.from_bytes(
                hashlib.blake2b(sig[band * ROWS : (band + 1) * ROWS].tobytes(), digest_size=7).digest(), "big"
            ),
        )
        for band in range(BANDS)
    ]


class StoryClusterer:
    """Assigns story ids; ``path=None`` keeps the state in memory (``newsflow analyze``, tests)."""

    def __init__(
        self, path: Path | None, window: timedelta = timedelta(hours=72), threshold: float = 0.4
    ) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.window = window
        self.threshold = threshold
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path) if path else ":memory:", check_same_thread=False)
        self._db.executescript(
            """
            PRAGMA journal_mode=WAL;
            CREATE TABLE IF NOT EXISTS members (
                article_id TEXT PRIMARY KEY, story_id TEXT NOT NULL, seen_at REAL NOT NULL,
                sig BLOB NOT NULL);
            CREATE TABLE IF NOT EXISTS buckets (
                band INTEGER NOT NULL, bucket INTEGER NOT NULL, article_id TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS buckets_key ON buckets (band, bucket);
            CREATE INDEX IF NOT EXISTS members_seen ON members (seen_at);
            """
        )
        self._since_prune = 0

    def close(self) -> None:
        self._db.close()

    def assign(self, article_id: str, text: str, when: datetime) -> str:
        """The story of an article; the same article always gets the same story."""
        with self._lock, self._db:
            known = self._db.execute(
                "SELECT story_id FROM members WHERE article_id = ?", (article_id,)
            ).fetchone()
            if known:
                return str(known[0])
            sig = signature(text)
            if sig is None:
                return article_id
            buckets = _buckets(sig)
            story = self._best_match(sig, buckets, when.timestamp()) or article_id
            self._db.execute(
                "INSERT INTO members VALUES (?, ?, ?, ?)",
                (article_id, story, when.timestamp(), sig.tobytes()),
            )
            self._db.executemany(
                "INSERT INTO buckets VALUES (?, ?, ?)",
                [(band, bucket, article_id) for band, bucket in buckets],
            )
            self._since_prune += 1
            if self._since_prune >= PRUNE_EVERY:
                self._prune(when.timestamp())
            return story

    def _best_match(self, sig: Signature, buckets: list[tuple[int, int]], at: float) -> str | None:
        window = self.window.total_seconds()
        clauses = " OR ".join("(b.band = ? AND b.bucket = ?)" for _ in buckets)
        params: list[float | int] = [value for pair in buckets for value in pair]
        rows = self._db.execute(
            f"SELECT DISTINCT m.story_id, m.sig FROM buckets b JOIN members m ON m.article_id = b.article_id "  # noqa: S608 - only placeholders are interpolated
            f"WHERE ({clauses}) AND m.seen_at BETWEEN ? AND ?",
            [*params, at - window, at + window],
        ).fetchall()
        best: tuple[float, str] | None = None
        for story, blob in rows:
            score = similarity(sig, np.frombuffer(blob, dtype=np.uint64))
            if score >= self.threshold and (best is None or score > best[0]):
                best = (score, str(story))
        return best[1] if best else None

    def _prune(self, now: float) -> None:
        """Forget articles older than the window (relative to the newest article seen)."""
        cutoff = now - self.window.total_seconds()
        self._db.execute(
            "DELETE FROM buckets WHERE article_id IN (SELECT article_id FROM members WHERE seen_at < ?)",
            (cutoff,),
        )
        self._db.execute("DELETE FROM members WHERE seen_at < ?", (cutoff,))
        self._since_prune = 0
