"""``newsflow alerts list|add|remove|test|run|history|flush``."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from datetime import time
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from alerts.rules import Rule, RuleSet
from newsflow.commands import CommandRegistry, emit
from newsflow.settings import AlertSettings, ElasticsearchSettings, KafkaSettings, LoopSettings


def _rules_path(args: argparse.Namespace) -> Path:
    return Path(args.file) if args.file else AlertSettings().rules


def _rule_from_args(args: argparse.Namespace) -> Rule:
    data: dict[str, Any] = {"id": args.rule_id, "channels": [*(args.channel or ()), *(args.webhook or ())]}
    for key, value in (
        ("name", args.name),
        ("topics_any", args.topic),
        ("topics_all", args.all_topics),
        ("entities", args.entity),
        ("query", args.query),
        ("languages", args.lang),
        ("sources", args.source),
        ("min_topic_score", args.min_score),
        ("digest", args.digest),
        ("digest_at", args.digest_at),
        ("timezone", args.timezone),
    ):
        if value is not None:
            data[key] = value
    if args.throttle:
        count, _, window = args.throttle.rpartition("/")
        data["throttle"] = {"max_alerts": int(count or 1), "window": window}
    if args.quiet:
        start, _, end = args.quiet.partition("-")
        data["quiet_hours"] = {"start": time.fromisoformat(start), "end": time.fromisoformat(end)}
    return Rule.model_validate(data)


def _describe(rule: Rule) -> str:
    parts = [
        f"topics any {list(rule.topics_any)}" if rule.topics_any else "",
        f"topics all {list(rule.topics_all)}" if rule.topics_all else "",
        f"entities {list(rule.entities)}" if rule.entities else "",
        f"query {rule.query!r}" if rule.query else "",
        f"lang {list(rule.languages)}" if rule.languages else "",
        f"sources {list(rule.sources)}" if rule.sources else "",
        f"min score {rule.min_topic_score}" if rule.min_topic_score else "",
    ]
    channels = ", ".join(channel.label for channel in rule.channels)
    return f"{rule.id:<20} {'; '.join(p for p in parts if p)}  -> {channels}"


def cmd_alerts(args: argparse.Namespace) -> int:
    handlers = {"run": _run, "test": _test, "history": _history, "flush": _flush}
    if args.action in handlers:
        return handlers[args.action](args)
    path = _rules_path(args)
    try:
        rules = RuleSet.load(path)
        if args.action == "add":
            if not args.rule_id:
                sys.stderr.write("alerts add needs a RULE id\n")
                return 2
            rule = _rule_from_args(args)
            rules = rules.with_rule(rule)
            rules.save(path)
        elif args.action == "remove":
            if rules.get(args.rule_id or "") is None:
                sys.stderr.write(f"no rule {args.rule_id} in {path}\n")
                return 2
            rules = rules.without(args.rule_id)
            rules.save(path)
    except (ValidationError, ValueError, yaml.YAMLError) as exc:
        sys.stderr.write(f"invalid rule: {exc}\n")
        return 2
    payload = {"file": str(path), "rules": [rule.as_yaml() for rule in rules.rules]}
    emit(args, payload, "\n".join(_describe(r) for r in rules.rules) or f"no rules in {path}")
    return 0


def _test(args: argparse.Namespace) -> int:
    """Backtest: the rule as an Elasticsearch query over the article alias, with a story count."""
    from alerts.matcher import rule_query
    from index.client import make_client

    rule = RuleSet.load(_rules_path(args)).get(args.rule_id or "")
    if rule is None:
        sys.stderr.write(f"no rule {args.rule_id} in {_rules_path(args)}\n")
        return 2
    es_settings = ElasticsearchSettings()
    query = rule_query(rule, since=args.since)
    es = make_client(es_settings)
    try:
        response = es.search(
            index=es_settings.alias,
            query=query,
            size=args.size,
            sort=[{"@timestamp": "desc"}],
            source_includes=["title", "url", "@timestamp", "source", "story_id", "topics", "entities"],
            aggs={
                "stories": {"cardinality": {"field": "story_id"}},
                "no_story": {"missing": {"field": "story_id"}},
            },
            track_total_hits=True,
        )
    finally:
        es.close()
    aggs = response["aggregations"]
    total = response["hits"]["total"]["value"]
    alerts = int(aggs["stories"]["value"]) + int(aggs["no_story"]["doc_count"])
    hits = [{"id": hit["_id"], **hit["_source"]} for hit in response["hits"]["hits"]]
    payload = {
        "rule": rule.id,
        "since": args.since,
        "articles": total,
        "alerts": alerts,
        "hits": hits,
        "query": query,
    }
    lines = [f"{rule.id}: {total} articles in the last {args.since}, about {alerts} alerts (one per story)"]
    lines.extend(
        f"  {h.get('@timestamp')}  [{h.get('source', {}).get('domain')}] {h.get('title')}" for h in hits
    )
    emit(args, payload, "\n".join(lines))
    return 0


def _run(args: argparse.Namespace) -> int:
    from alerts.stage import AlertWorker
    from newsflow.cli import _install_signal_handlers, ensure_local_services
    from newsflow.kafka_io import make_producer

    ensure_local_services(kafka=True, elasticsearch=True)
    kafka = KafkaSettings()
    producer = make_producer(kafka)
    worker = AlertWorker(kafka, ElasticsearchSettings(), LoopSettings(), AlertSettings(), producer)
    stop = threading.Event()
    _install_signal_handlers(stop)
    try:
        worker.run(stop, idle_exit_s=args.idle_exit)
    finally:
        producer.close(timeout=10)
    summary = worker.loop.stats.as_dict()
    emit(args, {"worker": worker.worker_id, "stats": summary}, json.dumps(summary))
    return 0


def _history(args: argparse.Namespace) -> int:
    from alerts.history import HistoryStore
    from index.client import make_client

    filters: list[dict[str, Any]] = [{"term": {"doc_type": "alert"}}]
    if args.rule_id:
        filters.append({"term": {"rule_id": args.rule_id}})
    es = make_client(ElasticsearchSettings())
    try:
        store = HistoryStore(es, AlertSettings().history_index)
        docs = (
            store.search({"bool": {"filter": filters}}, size=args.size)
            if es.indices.exists(index=store.index)
            else []
        )
    finally:
        es.close()
    lines = [
        f"{d.get('created_at')}  {d.get('status'):<10} {d.get('rule_id'):<20} {d['items'][0]['title']}"
        f"  (+{d.get('item_count', 1) - 1} joined)"
        for d in docs
    ]
    emit(args, {"alerts": docs}, "\n".join(lines) or "no alerts yet")
    return 0


def _flush(args: argparse.Namespace) -> int:
    from alerts.stage import AlertWorker
    from newsflow.kafka_io import make_producer

    kafka = KafkaSettings()
    producer = make_producer(kafka)
    worker = AlertWorker(kafka, ElasticsearchSettings(), LoopSettings(), AlertSettings(), producer)
    try:
        sent = worker.flusher.flush()
    finally:
        worker.close()
        producer.close(timeout=10)
    emit(args, {"digests_sent": sent}, f"{sent} digests sent")
    return 0


def register(registry: CommandRegistry) -> None:
    p = registry.command(
        "alerts", cmd_alerts, "alert rules: list, add, remove, test (backtest), run, history, flush"
    )
    p.add_argument("action", choices=["list", "add", "remove", "test", "run", "history", "flush"])
    p.add_argument("rule_id", nargs="?", metavar="RULE")
    p.add_argument("--file", help="rules file (default NEWSFLOW_ALERT_RULES)")
    p.add_argument("--name")
    p.add_argument("--topic", action="append", help="any of these topics (repeatable)")
    p.add_argument("--all-topics", action="append", help="all of these topics (repeatable)")
    p.add_argument("--entity", action="append", help="canonical name or surface form (repeatable)")
    p.add_argument("--query", help="e.g. 'migration AND (title:\"EU summit\" OR entity:Blinken) -sport'")
    p.add_argument("--lang", action="append")
    p.add_argument("--source", action="append", help="source domain, e.g. stern.de")
    p.add_argument("--min-score", type=float, help="minimum topic score for the rule's topics")
    p.add_argument("--channel", action="append", help="URL | slack:URL | mailto:ADDR | kafka[:TOPIC]")
    p.add_argument("--webhook", action="append", help="webhook URL (same as --channel URL)")
    p.add_argument("--throttle", help="N/WINDOW, e.g. 3/1h (at most 3 alerts an hour; the rest as a digest)")
    p.add_argument("--digest", choices=["none", "hourly", "daily"])
    p.add_argument("--digest-at", help="time of the daily digest, HH:MM")
    p.add_argument("--quiet", help="quiet hours HH:MM-HH:MM; alerts then wait for a digest at the end")
    p.add_argument("--timezone", help="time zone of quiet hours and daily digests, e.g. Europe/Berlin")
    p.add_argument("--since", default="30d", help="backtest window for test, e.g. 7d, 30d")
    p.add_argument("--size", type=int, default=10)
    p.add_argument("--idle-exit", type=float, default=None, help="run: exit after this many idle seconds")
