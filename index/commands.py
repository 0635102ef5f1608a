"""CLI commands of the index area: ``index run|setup|migrate``, ``search``, ``stats``, ``kibana import``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from newsflow.cli import _run_stages, ensure_local_services
from newsflow.commands import CommandRegistry, emit
from newsflow.settings import ElasticsearchSettings


def cmd_index(args: argparse.Namespace) -> int:
    if args.action == "run":
        return _run_stages(args, ("index",))
    from index.client import make_client
    from index.setup import MAPPING_VERSION, migrate, setup

    ensure_local_services(kafka=False, elasticsearch=True)
    settings = ElasticsearchSettings()
    es = make_client(settings)
    if args.action == "setup":
        report = setup(es, settings).as_dict()
        emit(args, report, "\n".join(f"{k}: {v}" for k, v in report.items()))
        return 0
    migration = migrate(es, settings, to_version=args.to or MAPPING_VERSION, batch_size=args.batch_size)
    if migration is None:
        emit(
            args, {"migrated": False, "alias": settings.alias}, f"{settings.alias} is on that version already"
        )
        return 0
    payload = {"migrated": True, **migration.as_dict()}
    emit(args, payload, "\n".join(f"{k}: {v}" for k, v in payload.items()))
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from index.client import make_client
    from index.search import SearchQuery, search

    settings = ElasticsearchSettings()
    query = SearchQuery(
        text=args.text or "",
        topics=tuple(args.topic or ()),
        entities=tuple(args.entity or ()),
        sources=tuple(args.source or ()),
        language=args.lang,
        since=args.since,
        paywalled=args.paywalled,
        size=args.size,
    )
    result = search(make_client(settings), settings.alias, query)
    lines = [f"{result['total']} articles"]
    for hit in result["hits"]:
        lines.append(f"\n{hit['@timestamp']}  [{hit['source'].get('domain')}] {hit['title']}\n  {hit['url']}")
        lines.extend(f"  … {fragment}" for fragment in hit["highlights"][:2])
    emit(args, result, "\n".join(lines))
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from index.client import make_client
    from index.stats import index_stats, render

    settings = ElasticsearchSettings()
    stats = index_stats(make_client(settings), settings.alias, top=args.top)
    emit(args, stats, render(stats))
    return 0


def cmd_kibana(args: argparse.Namespace) -> int:
    from index.kibana import KIBANA_DIR, import_objects

    report = import_objects(ElasticsearchSettings(), Path(args.dir) if args.dir else KIBANA_DIR)
    emit(args, report, json.dumps(report))
    return 0


def register(registry: CommandRegistry) -> None:
    p = registry.command(
        "index", cmd_index, "index enriched articles (run), set up the alias (setup), or migrate it"
    )
    p.add_argument("action", nargs="?", choices=["run", "setup", "migrate"], default="run")
    p.add_argument("--idle-exit", type=float, default=None, help="run: exit after this many idle seconds")
    p.add_argument("--to", type=int, default=None, help="migrate: mapping version (default: the newest)")
    p.add_argument("--batch-size", type=int, default=500, help="migrate: documents per copy request")
    p.set_defaults(once=False)

    p = registry.command("search", cmd_search, "search indexed articles, with highlighted snippets")
    p.add_argument("text", nargs="?", default="")
    p.add_argument("--topic", action="append")
    p.add_argument("--entity", action="append")
    p.add_argument("--source", action="append", help="domain (stern.de) or publisher name")
    p.add_argument("--lang")
    p.add_argument("--since", help="e.g. 30m, 12h, 7d, 2w")
    paywall = p.add_mutually_exclusive_group()
    paywall.add_argument("--paywalled", action="store_true", default=None, help="only paywalled articles")
    paywall.add_argument("--free", dest="paywalled", action="store_false", help="only free articles")
    p.set_defaults(paywalled=None)
    p.add_argument("--size", type=int, default=10)

    p = registry.command("stats", cmd_stats, "articles per source, topic, language; last ingest per feed")
    p.add_argument("--top", type=int, default=50, help="rows per table")

    p = registry.command("kibana", cmd_kibana, "import deploy/kibana/*.ndjson into the configured Kibana")
    p.add_argument("action", choices=["import"])
    p.add_argument("--dir", help="folder of *.ndjson saved objects (default: deploy/kibana)")
