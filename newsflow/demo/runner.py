"""``newsflow demo``: the whole pipeline over the bundled sample site, on the real servers.

The sample site is served on 127.0.0.1; only that host is exempted from the SSRF guard. The demo
uses the normal topics and alias, so ``newsflow search`` finds the sample articles afterwards.
Its poller state is fresh each run, so every run carries every sample article through every
stage again (an article counts once it was indexed by this run); indexing is idempotent, so
re-running leaves one document per article.
"""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from index.client import make_client
from index.search import SearchQuery, search
from ingest.feeds import FeedRegistry, FeedSpec
from ingest.urls import article_id, canonicalize_url
from newsflow.demo.server import SiteServer, demo_site_root
from newsflow.pipeline import STAGES, PipelineRunner, PipelineSettings
from newsflow.settings import HttpSettings, IngestSettings

DEMO_STATE = Path(".newsflow/demo")


def expected_articles(root: Path | None = None) -> list[dict[str, Any]]:
    data = json.loads(((root or demo_site_root()) / "expected.json").read_text(encoding="utf-8"))
    articles: list[dict[str, Any]] = data["articles"]
    return articles


def demo_registry(base_url: str, root: Path) -> FeedRegistry:
    """One registry entry per sample feed; the language hint comes from the file name."""
    feeds = []
    for path in sorted((root / "feeds").iterdir()):
        language = "de" if path.stem.endswith("-de") else "en" if path.stem.endswith("-en") else None
        feeds.append(
            FeedSpec(
                url=f"{base_url}/feeds/{path.name}",
                kind="atom" if path.suffix == ".atom" else "rss",
                publisher=f"demo-{path.stem}",
                language=language,
                min_interval_s=5,
                max_interval_s=60,
            )
        )
    return FeedRegistry(feeds=tuple(feeds))


def expected_ids(base_url: str, root: Path | None = None) -> list[str]:
    """The Elasticsearch ids the sample articles must end up under."""
    return sorted({article_id(canonicalize_url(f"{base_url}/{a['path']}")) for a in expected_articles(root)})


def _start_site(port: int) -> SiteServer:
    try:
        return SiteServer(demo_site_root(), port=port).start()
    except OSError:
        return SiteServer(demo_site_root(), port=0).start()


def run_demo(port: int = 8765, timeout_s: float = 300.0, echo: bool = True) -> dict[str, Any]:
    """Run until every sample article is searchable or ``timeout_s`` passed; returns the report."""
    started = time.monotonic()
    run_started_at = datetime.now(UTC).isoformat()
    state = DEMO_STATE / "state"
    shutil.rmtree(state, ignore_errors=True)
    root = demo_site_root()
    site = _start_site(port)
    base_url = site.base_url
    try:
        feeds_file = DEMO_STATE / "feeds.yaml"
        demo_registry(base_url, root).save(feeds_file)
        settings = PipelineSettings(
            ingest=IngestSettings(feeds_file=feeds_file, state_dir=state),
            http=HttpSettings(allowed_hosts=("127.0.0.1",)),
        )
        ids = expected_ids(base_url, root)
        es = make_client(settings.elasticsearch)
        alias = settings.elasticsearch.alias
        runner = PipelineRunner(settings, STAGES)
        stop = threading.Event()
        thread = threading.Thread(target=runner.run, args=(stop,), kwargs={"poll_once": True}, daemon=True)
        thread.start()
        indexed = 0
        while time.monotonic() - started < timeout_s and thread.is_alive():
            if es.indices.exists_alias(name=alias):
                es.indices.refresh(index=alias)
                # Indexed by this run, not left over from an earlier one.
                fresh = {
                    "bool": {
                        "filter": [
                            {"ids": {"values": ids}},
                            {"range": {"indexed_at": {"gte": run_started_at}}},
                        ]
                    }
                }
                indexed = int(es.count(index=alias, query=fresh)["count"])
                if echo:
                    sys.stderr.write(f"\rindexed {indexed}/{len(ids)} sample articles")
                if indexed >= len(ids):
                    break
            time.sleep(1.0)
        stop.set()
        thread.join(timeout=60)
        if echo:
            sys.stderr.write("\n")
        # A topic filter shows enrichment at work: German and English articles alike.
        sample = search(es, alias, SearchQuery(topics=("migration",), size=5))
    finally:
        site.stop()
    report: dict[str, Any] = {
        "articles_expected": len(ids),
        "articles_indexed": indexed,
        "seconds": round(time.monotonic() - started, 1),
        "site": base_url,
        "stages": {name: stats.as_dict() for name, stats in runner.stats.items()},
        "errors": {name: str(error) for name, error in runner.errors.items()},
        "sample_search": {
            "query": "--topic migration",
            "total": sample["total"],
            "titles": [hit["title"] for hit in sample["hits"]],
        },
    }
    if echo:
        sys.stderr.write(summary(report))
    return report


def summary(report: dict[str, Any]) -> str:
    lines = [
        f"\nnewsflow demo: {report['articles_indexed']}/{report['articles_expected']} sample articles "
        f"searchable after {report['seconds']} s (site {report['site']})",
        "",
        "per stage (outcome=count {reason: count}):",
    ]
    for stage, outcomes in report["stages"].items():
        parts = [
            f"{outcome}={sum(reasons.values())} {dict(reasons)}" for outcome, reasons in outcomes.items()
        ]
        lines.append(f"  {stage:<7} " + ("; ".join(parts) or "nothing to do"))
    lines += [
        "",
        f"sample search {report['sample_search']['query']!r}: {report['sample_search']['total']} hits",
    ]
    lines += [f"  - {title}" for title in report["sample_search"]["titles"]]
    return "\n".join(lines) + "\n"
