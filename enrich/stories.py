"""Story clustering: copies and rewrites of one story across sources share a ``story_id``.

Two tests, within the time window. **Near-duplicates**: MinHash over word 3-shingles estimates the
Jaccard similarity of two texts; LSH (32 bands of 3 rows) finds candidates without comparing against
every stored article; an article joins the story of its most similar candidate when the estimate
reaches the threshold. Agency copies that outlets trim, re-headline or extend keep most shingles.
**Rewrites** (another outlet's own words, or another language) share few shingles, so an article
without a near-duplicate also joins a story when it names at least ``min_shared_entities`` of the
same people, organisations or places as a member *and* its multilingual embedding (the topic
classifier's, USE v3) is at least ``semantic_threshold`` close to that member's. Either signal alone
is not enough: reports of two different harbour fires read alike (cosine ~0.75) but name other
places and people; a company's earnings report names the same ferry line and port as a fire on its
ship but reads differently (~0.5). Otherwise an article starts a story named after itself.

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
from collections.abc import Collection, Iterable
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
MAX_ENTITIES = 24  # per article, for the rewrite test

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


def _best_story(scored: Iterable[tuple[float, str]], threshold: float) -> str | None:
    """The story of the highest score that reaches ``threshold`` (the first of equal ones)."""
    best: tuple[float, str] | None = None
    for score, story in scored:
        if score >= threshold and (best is None or score > best[0]):
            best = (score, story)
    return best[1] if best else None


class StoryClusterer:
    """Assigns story ids; ``path=None`` keeps the state in memory (``newsflow analyze``, tests)."""

    def __init__(
        self,
        path: Path | None,
        window: timedelta = timedelta(hours=72),
        threshold: float = 0.4,
        semantic_threshold: float | None = 0.7,
        min_shared_entities: int = 2,
    ) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.window = window
        self.threshold = threshold
        self.semantic_threshold = semantic_threshold
        self.min_shared_entities = min_shared_entities
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
            CREATE TABLE IF NOT EXISTS member_entities (entity TEXT NOT NULL, article_id TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS member_entities_key ON member_entities (entity);
            """
        )
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(members)")}
        if "vec" not in columns:  # state files written before rewrites were clustered
            self._db.execute("ALTER TABLE members ADD COLUMN vec BLOB")
        self._since_prune = 0

    def close(self) -> None:
        self._db.close()

    def assign(
        self,
        article_id: str,
        text: str,
        when: datetime,
        vector: npt.NDArray[np.float32] | None = None,
        entities: Collection[str] = (),
    ) -> str:
        """The story of an article; the same article always gets the same story. ``vector`` (unit
        length) and ``entities`` (canonical names of its people, organisations and places) enable
        the rewrite test; the most salient first, as only ``MAX_ENTITIES`` are kept."""
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
            names = list(dict.fromkeys(name.casefold() for name in entities))[:MAX_ENTITIES]
            story = (
                self._best_match(sig, buckets, when.timestamp())
                or self._same_story(vector, names, when.timestamp())
                or article_id
            )
            stored_vector = vector.astype(np.float16).tobytes() if vector is not None else None
            self._db.execute(
                "INSERT INTO members (article_id, story_id, seen_at, sig, vec) VALUES (?, ?, ?, ?, ?)",
                (article_id, story, when.timestamp(), sig.tobytes(), stored_vector),
            )
            self._db.executemany(
                "INSERT INTO buckets VALUES (?, ?, ?)",
                [(band, bucket, article_id) for band, bucket in buckets],
            )
            self._db.executemany(
                "INSERT INTO member_entities VALUES (?, ?)", [(name, article_id) for name in names]
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
        scored = ((similarity(sig, np.frombuffer(blob, dtype=np.uint64)), str(story)) for story, blob in rows)
        return _best_story(scored, self.threshold)

    def _same_story(self, vector: npt.NDArray[np.float32] | None, names: list[str], at: float) -> str | None:
        """The story of the closest member that names enough of the same entities, if close enough."""
        if vector is None or self.semantic_threshold is None or len(names) < self.min_shared_entities:
            return None
        window = self.window.total_seconds()
        marks = ", ".join("?" for _ in names)
        rows = self._db.execute(
            f"SELECT m.story_id, m.vec FROM member_entities e JOIN members m ON m.article_id = e.article_id "  # noqa: S608 - only placeholders are interpolated
            f"WHERE e.entity IN ({marks}) AND m.seen_at BETWEEN ? AND ? AND m.vec IS NOT NULL "
            "GROUP BY m.article_id HAVING COUNT(*) >= ?",
            [*names, at - window, at + window, self.min_shared_entities],
        ).fetchall()
        others = (
            (np.frombuffer(blob, dtype=np.float16).astype(np.float32), str(story)) for story, blob in rows
        )
        scored = ((float(other @ vector), story) for other, story in others if other.shape == vector.shape)
        return _best_story(scored, self.semantic_threshold)

    def _prune(self, now: float) -> None:
        """Forget articles older than the window (relative to the newest article seen)."""
        cutoff = now - self.window.total_seconds()
        for table in ("buckets", "member_entities"):
            self._db.execute(
                f"DELETE FROM {table} WHERE article_id IN (SELECT article_id FROM members WHERE seen_at < ?)",  # noqa: S608 - a fixed table name
                (cutoff,),
            )
        self._db.execute("DELETE FROM members WHERE seen_at < ?", (cutoff,))
        self._since_prune = 0
