"""Extraction commands: ``extract`` (one page), ``eval extraction`` (quality), ``reextract`` (archive)."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from newsflow.commands import CommandRegistry, emit


def cmd_extract(args: argparse.Namespace) -> int:
    """Print the article exactly as the fetch stage would put it on the wire."""
    from ingest.extract import extract
    from ingest.http import HttpClient
    from ingest.stage import FetchStage, build_article, resolve_canonical
    from ingest.urls import article_id, canonicalize_url, source_domain
    from newsflow.schemas import LinkMessage
    from newsflow.settings import HttpSettings

    target: str = args.target
    if target.startswith(("http://", "https://")):
        canonical = canonicalize_url(target)
        link = LinkMessage(
            url=target,
            canonical_url=canonical,
            article_id=article_id(canonical),
            feed_url="",
            publisher=source_domain(target),
            discovered_at=datetime.now(UTC),
        )
        with HttpClient(HttpSettings()) as http:
            article = FetchStage(http).process(link)
    else:
        path = Path(target)
        page = extract(path.read_bytes(), url=args.url)
        url = args.url or page.canonical_url or path.resolve().as_uri()
        canonical = resolve_canonical(page.canonical_url, url, canonicalize_url(url))
        article = build_article(page, url, canonical, datetime.now(UTC))
    payload = json.loads(article.model_dump_json())
    emit(args, payload, f"{article.title}\n{'=' * len(article.title)}\n\n{article.body}")
    return 0


def cmd_eval_extraction(args: argparse.Namespace) -> int:
    """Score newsflow's extractor on a labelled set with the Article Extraction Benchmark metric."""
    from ingest.evaluation import (
        benchmark_pages,
        evaluate,
        fundus_fixtures,
        fundus_pages,
        metadata_accuracy,
        summarise,
    )
    from ingest.extract import extract

    if args.fundus:
        pages = fundus_pages(Path(args.fundus))
        # Fundus also states title, authors and date: report how often those match too.
        accuracy = metadata_accuracy(
            fundus_fixtures(Path(args.fundus)), lambda html, url: extract(html, url=url)
        )
        dataset: dict[str, Any] = {"fundus": args.fundus, "metadata": accuracy}
    elif args.gold and args.html:
        pages = benchmark_pages(Path(args.gold), Path(args.html))
        dataset = {"gold": args.gold, "html": args.html}
    else:
        sys.stderr.write("newsflow eval extraction: give --gold GOLD.json --html DIR, or --fundus DIR\n")
        return 2
    scores = evaluate(pages, lambda html, url: extract(html, url=url).body)
    report: dict[str, Any] = {**summarise(scores, worst=args.worst), **dataset}
    lines = [
        f"pages {report['pages']}  precision {report['precision']:.4f}  recall {report['recall']:.4f}"
        f"  F1 {report['f1']:.4f}",
        *(f"failed: {reason}: {count}" for reason, count in report["failed"].items()),
        *(f"metadata {field}: {share:.4f}" for field, share in report.get("metadata", {}).items()),
        "worst pages:",
        *(
            f"  {w['f1']:.3f}  P {w['precision']:.3f}  R {w['recall']:.3f}  {w['page']}"
            for w in report["worst"]
        ),
    ]
    emit(args, report, "\n".join(lines))
    return 0


def cmd_reextract(args: argparse.Namespace) -> int:
    """Re-extract archived pages with the current extractor; ``--publish`` re-sends the articles."""
    from ingest.extract import ExtractionFailed
    from ingest.rawstore import RawStore
    from ingest.stage import article_from_html
    from newsflow.settings import IngestSettings

    root = Path(args.dir) if args.dir else IngestSettings().raw_html_dir
    if root is None:
        sys.stderr.write("newsflow reextract: no archive (set NEWSFLOW_INGEST_RAW_HTML_DIR or pass --dir)\n")
        return 2
    store = RawStore(root)
    if args.id:
        raw_pages = [versions[-1] for versions in map(store.versions, args.id) if versions]
    else:
        raw_pages = list(store.latest())
    articles = []
    failed: Counter[str] = Counter()
    changed = 0
    for raw in raw_pages:
        try:
            article = article_from_html(raw.link, raw.url, raw.html(), raw.charset, raw.fetched_at)
        except ExtractionFailed as exc:
            failed[exc.reason] += 1
            continue
        changed += article.body_hash != raw.body_hash
        articles.append(article)
    if args.publish and articles:
        _publish(articles)
    report = {
        "archive": str(root),
        "pages": len(raw_pages),
        "extracted": len(articles),
        "body_changed": changed,
        "failed": dict(failed),
        "published": len(articles) if args.publish else 0,
    }
    emit(args, report, "\n".join(f"{k}: {v}" for k, v in report.items()))
    return 1 if args.id and not raw_pages else 0


def _publish(articles: list[Any]) -> None:
    """Send re-extracted articles to the articles topic; the index keeps the newest revision."""
    from newsflow.cli import ensure_local_services
    from newsflow.kafka_io import ensure_topics, make_producer
    from newsflow.loop import KafkaSink
    from newsflow.settings import KafkaSettings

    ensure_local_services(kafka=True, elasticsearch=False)
    settings = KafkaSettings()
    ensure_topics(settings, ["articles"])
    producer = make_producer(settings)
    try:
        KafkaSink[Any](producer, settings.topic("articles")).write(articles)
    finally:
        producer.close()


def register(registry: CommandRegistry) -> None:
    p = registry.command("extract", cmd_extract, "extract one article from a URL or an HTML file")
    p.add_argument("target", help="URL or path of an HTML file")
    p.add_argument("--url", help="the page's URL, when extracting a file")

    p = registry.eval_command(
        "extraction",
        cmd_eval_extraction,
        "body precision/recall/F1 (Article Extraction Benchmark metric) on a scrapinghub-style or Fundus set",
    )
    p.add_argument("--gold", help="ground-truth JSON: {page id: {articleBody, url}}")
    p.add_argument("--html", help="folder of <page id>.html(.gz) pages")
    p.add_argument(
        "--fundus", help="Fundus fixture folder (<Publisher>.json, <Publisher>_<date>.html.gz, meta.info)"
    )
    p.add_argument("--worst", type=int, default=10, help="how many worst pages to list")

    p = registry.command("reextract", cmd_reextract, "re-extract articles from the raw HTML archive")
    p.add_argument("--dir", help="archive folder (default NEWSFLOW_INGEST_RAW_HTML_DIR)")
    p.add_argument("--id", action="append", help="only this article id (repeatable); default: all")
    p.add_argument("--publish", action="store_true", help="send the re-extracted articles to Kafka")
