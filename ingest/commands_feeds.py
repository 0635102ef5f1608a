"""``newsflow feeds ...``: edit the feed registry, exchange it as OPML, check feeds, see their state."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from ingest.feeds import FEED_KINDS, FeedRegistry, FeedSpec
from newsflow.commands import CommandRegistry, emit
from newsflow.settings import IngestSettings


def register(registry: CommandRegistry) -> None:
    p = registry.command(
        "feeds", cmd_feeds, "edit the feed registry, import/export OPML, check feeds, show poll state"
    )
    file_help = "registry file (default NEWSFLOW_INGEST_FEEDS_FILE)"
    p.add_argument("--file", help=file_help)
    p.set_defaults(action="list")
    # The options again after the action; SUPPRESS keeps a value given before it (`feeds --json list`).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--file", default=argparse.SUPPRESS, help=file_help)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="one JSON object")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.add_parser("list", parents=[common], help="the registered feeds")
    add = actions.add_parser("add", parents=[common], help="add (or replace) a feed")
    add.add_argument("url")
    add.add_argument("--kind", default="rss", choices=FEED_KINDS)
    add.add_argument("--publisher", default="")
    add.add_argument("--language")
    add.add_argument("--min-interval", type=float, help="seconds; the fastest this feed is polled")
    add.add_argument("--max-interval", type=float, help="seconds; the slowest this feed is polled")
    remove = actions.add_parser("remove", parents=[common], help="remove a feed")
    remove.add_argument("url")
    opml_in = actions.add_parser("import-opml", parents=[common], help="add the feeds of an OPML file")
    opml_in.add_argument("opml", type=Path)
    opml_out = actions.add_parser("export-opml", parents=[common], help="write the registry as OPML")
    opml_out.add_argument("opml", type=Path, nargs="?", help="output file (default: stdout)")
    check = actions.add_parser(
        "check", parents=[common], help="fetch each feed once; report status, reason, items (emits nothing)"
    )
    check.add_argument("urls", nargs="*", help="feeds to check (default: every enabled registered feed)")
    check.add_argument("--kind", default="rss", choices=FEED_KINDS)
    actions.add_parser("status", parents=[common], help="poll state per feed; failing feeds flagged")


def cmd_feeds(args: argparse.Namespace) -> int:
    settings = IngestSettings()
    path = Path(args.file) if args.file else settings.feeds_file
    registry = FeedRegistry.load(path) if path.exists() else FeedRegistry()
    if args.action == "check":
        return _check(args, registry, settings)
    if args.action == "status":
        return _status(args, registry, settings)
    if args.action == "export-opml":
        return _export(args, registry)
    if args.action == "add":
        registry = registry.with_feed(_spec(args))
    elif args.action == "remove":
        if not any(f.url == args.url for f in registry.feeds):
            sys.stderr.write(f"no feed {args.url} in {path}\n")
            return 2
        registry = registry.without(args.url)
    extra: dict[str, Any] = {}
    if args.action == "import-opml":
        registry, extra = _import(registry, args.opml)
    if args.action != "list":
        registry.save(path)
    feeds = [feed.model_dump() for feed in registry.feeds]
    lines = [
        f"{'on ' if f.enabled else 'off'} {f.kind:<12} {f.language or '--'}  {f.publisher:<20} {f.url}"
        for f in registry.feeds
    ]
    if extra:
        lines.append(f"imported {extra['added']} feeds, kept {extra['kept']} already registered")
    emit(args, {"file": str(path), "feeds": feeds, **extra}, "\n".join(lines) or f"no feeds in {path}")
    return 0


def _spec(args: argparse.Namespace) -> FeedSpec:
    fields: dict[str, Any] = {"url": args.url, "kind": args.kind, "publisher": args.publisher}
    fields["language"] = args.language
    if args.min_interval is not None:
        fields["min_interval_s"] = args.min_interval
    if args.max_interval is not None:
        fields["max_interval_s"] = args.max_interval
    return FeedSpec.model_validate(fields)


def _import(registry: FeedRegistry, source: Path) -> tuple[FeedRegistry, dict[str, Any]]:
    """Adds the OPML's feeds; feeds already registered keep their settings."""
    from ingest.opml import parse_opml

    known = {feed.url for feed in registry.feeds}
    imported = parse_opml(source.read_bytes())
    added = 0
    for feed in imported:
        if feed.url not in known:
            registry = registry.with_feed(feed)
            added += 1
    return registry, {"imported_from": str(source), "added": added, "kept": len(imported) - added}


def _export(args: argparse.Namespace, registry: FeedRegistry) -> int:
    from ingest.opml import to_opml

    document = to_opml(registry.feeds)
    if args.opml:
        args.opml.write_bytes(document)
        emit(args, {"file": str(args.opml), "feeds": len(registry.feeds)}, f"wrote {args.opml}")
    else:
        emit(args, {"feeds": len(registry.feeds), "opml": document.decode("utf-8")}, document.decode("utf-8"))
    return 0


def _check(args: argparse.Namespace, registry: FeedRegistry, settings: IngestSettings) -> int:
    """Fetch each feed once with the poller's rules, emitting nothing and storing nothing."""
    feeds = (
        [FeedSpec(url=url, publisher="check", kind=args.kind) for url in args.urls]
        if args.urls
        else list(registry.enabled())
    )
    report = asyncio.run(_check_feeds(feeds, settings))
    failed = sum(1 for row in report if row["outcome"] == "failed")
    lines = [
        f"{r['outcome']:<7} {r['reason']:<24} {r['items']:>4} items {r['elapsed_s']:>5.1f}s {r['url']}"
        for r in report
    ]
    lines.append(f"{len(report) - failed} ok, {failed} failed")
    emit(args, {"feeds": report, "ok": len(report) - failed, "failed": failed}, "\n".join(lines))
    return 1 if failed else 0


async def _check_feeds(feeds: list[FeedSpec], settings: IngestSettings) -> list[dict[str, Any]]:
    from ingest.http import AsyncHttpClient
    from ingest.politeness import HostLimiter, RobotsCache
    from ingest.poller import Poller
    from ingest.state import StateStore
    from newsflow.loop import StageStats
    from newsflow.settings import HttpSettings

    http_settings = HttpSettings()
    store = StateStore(":memory:")  # a fresh state: a full GET, every item counted, nothing kept
    async with AsyncHttpClient(http_settings, max_connections=settings.concurrency) as http:
        poller = Poller(
            store,
            http,
            StageStats("check"),
            settings.max_items_per_feed,
            RobotsCache(http, http_settings.user_agent),
            HostLimiter(settings.per_host_concurrency, settings.per_host_delay_s),
        )

        async def check(feed: FeedSpec) -> dict[str, Any]:
            started = time.monotonic()
            result = await poller.poll(feed)
            poller.release([result])
            return {
                "url": feed.url,
                "outcome": "failed" if result.outcome == "failed" else "ok",
                "reason": result.reason,
                "items": result.items,
                "elapsed_s": round(time.monotonic() - started, 3),
            }

        report = await asyncio.gather(*(check(feed) for feed in feeds))
    store.close()
    return list(report)


def _status(args: argparse.Namespace, registry: FeedRegistry, settings: IngestSettings) -> int:
    """What the poller's state says per registered feed: schedule, last outcome, failing streaks."""
    from ingest.service import state_path
    from ingest.state import StateStore

    path = state_path(settings)
    states = StateStore(path).all_feeds() if path.exists() else {}
    now = time.time()
    rows: list[dict[str, Any]] = []
    for feed in registry.feeds:
        state = states.get(feed.url)
        rows.append(
            {
                "url": feed.url,
                "enabled": feed.enabled,
                "polled": state is not None,
                "last_outcome": state.last_outcome if state else None,
                "last_error": state.last_error if state else None,
                "consecutive_failures": state.consecutive_failures if state else 0,
                "failing": bool(state and state.consecutive_failures >= settings.failing_after),
                "interval_s": state.interval_s if state else None,
                "next_poll_in_s": round(state.next_poll_at - now, 1) if state else None,
                "items_emitted": state.items_emitted if state else 0,
            }
        )
    failing = [row for row in rows if row["failing"]]
    lines = [
        f"{'FAILING' if r['failing'] else (r['last_outcome'] or 'never'):<12} "
        f"{r['consecutive_failures']:>3}x {r['last_error'] or '':<22} next {r['next_poll_in_s']}s {r['url']}"
        for r in rows
    ]
    lines.append(f"{len(rows)} feeds, {len(failing)} failing (>= {settings.failing_after} failures in a row)")
    emit(args, {"state": str(path), "feeds": rows, "failing": len(failing)}, "\n".join(lines))
    return 0
