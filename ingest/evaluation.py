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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_TOKEN = re.compile(r"\w+", re.UNICODE)
SHINGLE = 4


@dataclass(frozen=True)
class PageScore:
    page: str
    tp: float
    fp: float
    fn: float

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
    precision = statistics.mean(s.precision for s in scores if s.tp + s.fp > 0)
    recall = statistics.mean(s.recall for s in scores if s.tp + s.fn > 0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    ranked = sorted(scores, key=lambda s: s.f1)[:worst]
    return {
        "pages": len(scores),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "worst": [
            {
                "page": s.page,
                "f1": round(s.f1, 3),
                "precision": round(s.precision, 3),
                "recall": round(s.recall, 3),
            }
            for s in ranked
        ],
    }


def _read_html(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def benchmark_pages(gold_file: Path, html_dir: Path) -> Iterator[tuple[str, str | None, bytes, str]]:
    """(page id, url, html, gold body) of a scrapinghub-style set."""
    gold = json.loads(gold_file.read_text(encoding="utf-8"))
    for page_id, item in sorted(gold.items()):
        candidates = [html_dir / f"{page_id}.html.gz", html_dir / f"{page_id}.html"]
        path = next((c for c in candidates if c.exists()), None)
        if path is None:
            continue
        yield page_id, item.get("url"), _read_html(path), item.get("articleBody", "")


def fundus_pages(folder: Path) -> Iterator[tuple[str, str | None, bytes, str]]:
    """(page id, url, html, gold body) of Fundus fixtures: ``<Publisher>.json`` beside the pages."""
    for gold_file in sorted(folder.rglob("*.json")):
        publisher = gold_file.stem
        fixtures = json.loads(gold_file.read_text(encoding="utf-8"))
        meta_file = gold_file.parent / "meta.info"
        meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.exists() else {}
        for key, fixture in sorted(fixtures.items()):
            page = gold_file.parent / f"{publisher}_{key}.html.gz"
            if not page.exists():
                continue
            gold = fixture.get("body") if isinstance(fixture, dict) else None
            text = _fundus_body_text(gold)
            if not text:
                continue
            url = (meta.get(page.name) or {}).get("url") if isinstance(meta.get(page.name), dict) else None
            yield f"{publisher}/{key}", url, _read_html(page), text


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


def evaluate(
    pages: Iterator[tuple[str, str | None, bytes, str]], extractor: Callable[[bytes, str | None], str]
) -> list[PageScore]:
    scores = []
    for page_id, url, html, gold in pages:
        try:
            predicted = extractor(html, url)
        except Exception:  # noqa: BLE001 - a page the extractor rejects scores as empty, like in the benchmark
            predicted = ""
        scores.append(score_page(page_id, gold, predicted))
    return scores
