"""Extraction throughput: pages extracted per second per core on the scrapinghub pages.

    .venv/bin/python bench/extract_bench.py                  # 3 runs, prints one JSON object
    .venv/bin/python bench/extract_bench.py --runs 5 --baseline

All pages are read into memory first; each run extracts every page once in this process (one
core) and is timed by CPU time (``time.process_time``), so other load on a shared machine does not
count against it; wall time is reported too. Pages/s/core is the median over runs. ``--baseline``
also times one plain ``trafilatura.extract`` per page for comparison. Peak RSS is the process's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trafilatura

from ingest.evaluation import benchmark_pages
from ingest.extract import ExtractionFailed, extract

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "extraction" / "scrapinghub"


def _time(pages: list[tuple[str | None, bytes]], run: Any) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for url, html in pages:
        run(html, url)
    return time.process_time() - cpu, time.perf_counter() - wall


def _ours(html: bytes, url: str | None) -> None:
    with contextlib.suppress(ExtractionFailed):  # a rejected page costs its time too
        extract(html, url=url)


def _plain(html: bytes, url: str | None) -> None:
    trafilatura.extract(html.decode("utf-8", errors="replace"), url=url)


def measure(pages: list[tuple[str | None, bytes]], runs: int, extractor: Any) -> dict[str, Any]:
    _time(pages[:10], extractor)  # warm-up: imports, caches
    timings = [_time(pages, extractor) for _ in range(runs)]
    cpu = statistics.median(t[0] for t in timings)
    wall = statistics.median(t[1] for t in timings)
    return {
        "pages_per_s_per_core": round(len(pages) / cpu, 1),
        "ms_per_page_cpu": round(1000 * cpu / len(pages), 2),
        "wall_s_median": round(wall, 2),
        "runs": runs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--data", type=Path, default=DATA, help="scrapinghub folder (ground-truth.json, html/)"
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", action="store_true", help="also time plain trafilatura.extract")
    args = parser.parse_args()
    pages = [
        (url, html)
        for _, url, html, _ in benchmark_pages(args.data / "ground-truth.json", args.data / "html")
    ]
    report: dict[str, Any] = {
        "pages": len(pages),
        "html_mb": round(sum(len(html) for _, html in pages) / 1e6, 1),
        "newsflow": measure(pages, args.runs, _ours),
    }
    if args.baseline:
        report["plain_trafilatura"] = measure(pages, args.runs, _plain)
    report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    sys.stdout.write(json.dumps(report) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
