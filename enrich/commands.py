"""Enrichment's commands: ``newsflow analyze FILE`` and ``newsflow eval topics``."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from newsflow.commands import CommandRegistry, emit
from newsflow.schemas import ENTITY_LABELS, Article

_HTML = re.compile(rb"^\s*(?:<!doctype html|<html|<head|<body|<article|<meta)", re.IGNORECASE)


def read_article(path: Path) -> Article:
    """An article from an HTML page (extracted as ingest does) or a text file (first line = title)."""
    from ingest.stage import body_hash

    raw = path.read_bytes()
    if path.suffix.lower() in {".html", ".htm"} or _HTML.match(raw):
        from ingest.extract import extract

        page = extract(raw, url=path.resolve().as_uri())
        title, body, language = page.title, page.body, page.language
    else:
        title, _, body = raw.decode("utf-8", errors="replace").strip().partition("\n")
        language = None
    return Article(
        article_id=path.name,
        url=path.resolve().as_uri(),
        canonical_url=path.resolve().as_uri(),
        title=title.strip(),
        body=body.strip(),
        language=language,
        source_domain="local",
        body_hash=body_hash(body),
        fetched_at=datetime.now(UTC),
    )


def cmd_analyze(args: argparse.Namespace) -> int:
    from enrich.stage import build_stage
    from newsflow.settings import EnrichSettings, SpacySettings

    stage = build_stage(EnrichSettings(), SpacySettings(), persistent=False)
    enriched = stage.process(read_article(Path(args.file)))
    entities: dict[str, list[str]] = {label: [] for label in ENTITY_LABELS}
    for entity in enriched.entities:
        entities[entity.label].append(entity.name)
    payload: dict[str, Any] = {
        "language": enriched.language,
        "language_confidence": enriched.language_confidence,
        "title": enriched.article.title,
        "entities": entities,
        "entity_details": [e.model_dump() for e in enriched.entities],
        "topics": [t.model_dump() for t in enriched.topics],
        "notes": list(enriched.notes),
    }
    lines = [f"language: {enriched.language} ({enriched.language_confidence:.2f})"]
    lines += [f"{label}: {', '.join(names)}" for label, names in entities.items() if names]
    for topic in enriched.topics:
        lines.append(f"topic {topic.name} {topic.score:.2f}")
        lines += [f"  {item}" for item in topic.evidence]
    lines += [f"note: {note}" for note in enriched.notes]
    emit(args, payload, "\n".join(lines))
    return 0


def cmd_eval_topics(args: argparse.Namespace) -> int:
    from enrich.topic_eval import evaluate
    from enrich.topics import Taxonomy, TopicClassifier
    from newsflow.settings import EnrichSettings

    settings = EnrichSettings()
    classifier = TopicClassifier(Taxonomy.load(settings.topics_file), threshold=settings.topic_threshold)
    report = evaluate(Path(args.dataset), classifier, Path(args.labels) if args.labels else None, args.limit)
    lines = [f"accuracy {report['accuracy']:.4f}  macro-F1 {report['macro_f1']:.4f}  n={report['n']}"]
    for label, row in report["per_label"].items():
        lines.append(f"  {label:<16} P {row['precision']:.3f}  R {row['recall']:.3f}  F1 {row['f1']:.3f}")
    lines.append("confusion (gold → predicted):")
    lines += [f"  {gold:<16} {dict(row)}" for gold, row in report["confusion"].items()]
    emit(args, report, "\n".join(lines))
    return 0


def register(registry: CommandRegistry) -> None:
    p = registry.command("analyze", cmd_analyze, "language, entities and topics (with evidence) of one file")
    p.add_argument("file", help="a plain-text file (first line: title) or an HTML page")
    p = registry.eval_command(
        "topics", cmd_eval_topics, "topic accuracy, macro-F1 and confusion on a labelled set"
    )
    p.add_argument("--dataset", required=True, help="a folder of label folders, or a CSV file 'label;text'")
    p.add_argument("--labels", help="YAML mapping dataset label → topic id (default: by id or alias)")
    p.add_argument("--limit", type=int, default=None, help="evaluate an evenly spread sample of N articles")
