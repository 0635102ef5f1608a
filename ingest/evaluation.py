"""Extraction quality with the Article Extraction Benchmark's metric.

Bodies are split into ``\\w+`` tokens and 4-token shingles; per page, shingle counts give
true/false positives and negatives, normalised so long pages weigh no more than short ones.
Precision and recall are averaged over pages (pages with nothing to score are left out of that
average, as the benchmark does) and F1 is taken of the two averages.
"""

from __future__ import annotations

import gzip
import json
import re
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_TOKEN = re.compile(r"\w+", re.UNICODE)
SHINGLE = 4
_DATE_TOLERANCE_S = 60
# (page id, url, html, gold body text)
GoldPage = tuple[str, str | None, bytes, str]


@dataclass(frozen=True)
class PageScore:
    page: str
    tp: float
    fp: float
    fn: float
    failure: str | None = None

    @property
    def precision(self) -> float:
        if self.fp == self.fn == 0:
            return 1.0
        if self.tp == self.fp == 0:
            return 0.0
        return self.tp / (self.tp + self.fp)

    @property
    def recall(self) -> float:
        if self.fp == self.fn == 0:
            return 1.0
        if self.tp == self.fn == 0:
            return 0.0
        return self.tp / (self.tp + self.fn)

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def shingles(text: str, n: int = SHINGLE) -> Counter[tuple[str, ...]]:
    tokens = _TOKEN.findall(text or "")
    return Counter(tuple(tokens[i : i + n]) for i in range(max(1, len(tokens) - n + 1)) if tokens[i : i + n])


def score_page(page: str, gold: str, predicted: str) -> PageScore:
    true, pred = shingles(gold), shingles(predicted)
    tp = fp = fn = 0.0
    for key in true.keys() | pred.keys():
        t, p = true.get(key, 0), pred.get(key, 0)
        tp += min(t, p)
        fp += max(0, p - t)
        fn += max(0, t - p)
    total = tp + fp + fn
    if total:
        tp, fp, fn = tp / total, fp / total, fn / total
    return PageScore(page, tp, fp, fn)


def summarise(scores: list[PageScore], worst: int = 5) -> dict[str, Any]:
    """Macro-averaged precision and recall, F1 of the two, failures by reason, the worst pages."""
    if not scores:
        raise ValueError("no pages to score")
    precision = _mean([s.precision for s in scores if s.tp + s.fp > 0])
    recall = _mean([s.recall for s in scores if s.tp + s.fn > 0])
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    ranked = sorted(scores, key=lambda s: s.f1)[:worst]
    return {
        "pages": len(scores),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "failed": dict(Counter(s.failure for s in scores if s.failure)),
        "worst": [
            {
                "page": s.page,
                "f1": round(s.f1, 3),
                "precision": round(s.precision, 3),
                "recall": round(s.recall, 3),
                **({"failure": s.failure} if s.failure else {}),
            }
            for s in ranked
        ],
    }


def _mean(values: list[float]) -> float:
    """Mean, and 0.0 when no page qualifies (the benchmark's script would crash instead)."""
    return statistics.mean(values) if values else 0.0


def _read_html(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def benchmark_pages(gold_file: Path, html_dir: Path) -> Iterator[GoldPage]:
    """(page id, url, html, gold body) of a scrapinghub-style set."""
    gold = json.loads(gold_file.read_text(encoding="utf-8"))
    for page_id, item in sorted(gold.items()):
        candidates = [html_dir / f"{page_id}.html.gz", html_dir / f"{page_id}.html"]
        path = next((c for c in candidates if c.exists()), None)
        if path is None:
            continue
        yield page_id, item.get("url"), _read_html(path), item.get("articleBody", "")


@dataclass(frozen=True)
class FundusFixture:
    """One Fundus page with what its parser is expected to find."""

    page: str
    url: str | None
    path: Path
    expected: dict[str, Any]


def fundus_fixtures(folder: Path) -> Iterator[FundusFixture]:
    """The Fundus fixtures under ``folder`` (searched recursively).

    A ``<Publisher>.json`` maps parser versions (``V1``, ``V1_1``, ``V2``, ...) to the expected
    article; the pages are ``<Publisher>_<date>.html.gz`` with url and crawl date in ``meta.info``.
    Fundus pairs each page with the parser version valid at its crawl date, one page per version,
    so versions in order pair with pages in crawl order; a publisher whose counts differ is skipped.
    """
    for gold_file in sorted(folder.rglob("*.json")):
        meta_file = gold_file.parent / "meta.info"
        if not meta_file.exists():
            continue
        publisher = gold_file.stem
        fixtures = json.loads(gold_file.read_text(encoding="utf-8"))
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        pages = sorted(
            gold_file.parent.glob(f"{publisher}_*.html.gz"),
            key=lambda page: (str((meta.get(page.name) or {}).get("crawl_date", "")), page.name),
        )
        versions = sorted(fixtures, key=_version_key)
        if len(pages) != len(versions):
            continue
        for version, page in zip(versions, pages, strict=True):
            page_id = str(page.relative_to(folder)).removesuffix(".html.gz")
            yield FundusFixture(page_id, (meta.get(page.name) or {}).get("url"), page, fixtures[version])


def fundus_pages(folder: Path) -> Iterator[GoldPage]:
    """(page id, url, html, gold body) of the Fundus fixtures under ``folder``."""
    for fixture in fundus_fixtures(folder):
        text = _fundus_body_text(fixture.expected.get("body"))
        if text:
            yield fixture.page, fixture.url, _read_html(fixture.path), text


def metadata_accuracy(
    fixtures: Iterable[FundusFixture], extractor: Callable[[bytes, str | None], Any]
) -> dict[str, float]:
    """Share of pages whose title, authors and publishing date match Fundus's expectations.

    Titles and author names compare as lower-cased ``\\w+`` tokens, author lists as sets, dates
    within a minute; a page the extractor rejects counts as a miss.
    """
    hits: Counter[str] = Counter()
    pages = 0
    for fixture in fixtures:
        pages += 1
        try:
            found = extractor(_read_html(fixture.path), fixture.url)
        except Exception:  # noqa: BLE001, S112 - a rejected page is a miss on every field
            continue
        expected = fixture.expected
        hits["title"] += _words(expected.get("title")) == _words(found.title)
        hits["authors"] += {_words(a) for a in expected.get("authors") or []} == {
            _words(a) for a in found.authors
        }
        published = _fundus_date(expected.get("publishing_date"))
        hits["published"] += (
            published is not None
            and found.published_at is not None
            and abs((published - found.published_at).total_seconds()) <= _DATE_TOLERANCE_S
        )
    return {
        field: round(hits[field] / pages, 4) if pages else 0.0 for field in ("title", "authors", "published")
    }


def _words(text: Any) -> str:
    return " ".join(_TOKEN.findall(text.lower())) if isinstance(text, str) else ""


def _fundus_date(value: Any) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return parsed if parsed is None or parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _version_key(version: str) -> tuple[int, ...]:
    """``V1`` < ``V1_1`` < ``V1_2`` < ``V2`` < ``V10`` (numeric, not lexical)."""
    return tuple(int(n) for n in re.findall(r"\d+", version))


def _fundus_body_text(body: Any) -> str:
    """Fundus stores the body as summary + sections of headlines and paragraphs."""
    if isinstance(body, str):
        return body
    if not isinstance(body, dict):
        return ""
    parts: list[str] = list(body.get("summary", []))
    for section in body.get("sections", []):
        parts.extend(section.get("headline", []))
        parts.extend(section.get("paragraphs", []))
    return "\n".join(p for p in parts if isinstance(p, str))


def evaluate(pages: Iterable[GoldPage], extractor: Callable[[bytes, str | None], str]) -> list[PageScore]:
    """Score ``extractor`` on every page; a page it rejects scores as empty, as in the benchmark."""
    scores = []
    for page_id, url, html, gold in pages:
        try:
            predicted, failure = extractor(html, url), None
        except Exception as exc:  # noqa: BLE001 - any failure is a page with no text, reported by reason
            predicted, failure = "", getattr(exc, "reason", type(exc).__name__)
        scores.append(replace(score_page(page_id, gold, predicted), failure=failure))
    return scores
