"""The ``newsflow`` command line: one entry point for services, stages, tools and the demo.

Every command that reports figures takes ``--json`` and then prints exactly one JSON object on
stdout; logs go to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence

from newsflow import logs
from newsflow.commands import CommandRegistry, Handler, emit
from newsflow.settings import ElasticsearchSettings, KafkaSettings, ObservabilitySettings


def ensure_local_services(kafka: bool, elasticsearch: bool) -> list[str]:
    """Start the project's local servers for whatever has no external cluster configured."""
    from newsflow.services import LocalServices

    need_kafka = kafka and not KafkaSettings().bootstrap_servers
    need_es = elasticsearch and not ElasticsearchSettings().url
    if not (need_kafka or need_es):
        return []
    return LocalServices().up(kafka=need_kafka, elasticsearch=need_es)


# --- services -----------------------------------------------------------------------------------


def cmd_services(args: argparse.Namespace) -> int:
    from newsflow.services import LocalServices

    services = LocalServices()
    if args.action == "up":
        started = ensure_local_services(kafka=True, elasticsearch=True)
    elif args.action == "down":
        started = []
        stopped = services.down()
        emit(args, {"stopped": stopped}, f"stopped: {', '.join(stopped) or 'nothing (none of ours ran)'}")
        return 0
    elif args.action == "provision":
        figures = services.provision()
        emit(args, figures, "\n".join(f"{k}: {v}" for k, v in figures.items()))
        return 0
    statuses = services.status()
    payload = {
        "started": started if args.action == "up" else [],
        "external": {
            "kafka": KafkaSettings().bootstrap_servers,
            "elasticsearch": ElasticsearchSettings().url,
        },
        "services": [
            {
                "name": s.name,
                "running": s.running,
                "managed": s.managed,
                "pid": s.pid,
                "url": s.url,
                "detail": s.detail,
            }
            for s in statuses
        ],
    }
    lines = [
        f"{s.name:<14} {'running' if s.running else 'stopped':<8} {'ours' if s.managed else '':<5} {s.url}"
        f"  {s.detail}"
        for s in statuses
    ]
    emit(args, payload, "\n".join(lines))
    return 0


# --- stages ---------------------------------------------------------------------------------------


def _install_signal_handlers(stop: threading.Event) -> None:
    def handler(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _run_stages(args: argparse.Namespace, stages: Sequence[str]) -> int:
    from newsflow.pipeline import PipelineRunner, PipelineSettings

    ensure_local_services(kafka=True, elasticsearch="index" in stages)
    settings = PipelineSettings()
    stop = threading.Event()
    _install_signal_handlers(stop)
    runner = PipelineRunner(settings, stages)
    runner.run(stop, idle_exit_s=args.idle_exit, poll_once=args.once)
    summary = {name: stats.as_dict() for name, stats in runner.stats.items()}
    emit(
        args,
        {"stages": summary, "errors": {k: str(v) for k, v in runner.errors.items()}},
        json.dumps(summary),
    )
    return 1 if runner.errors else 0


def cmd_ingest(args: argparse.Namespace) -> int:
    return _run_stages(args, ("poll", "fetch"))


def cmd_enrich(args: argparse.Namespace) -> int:
    return _run_stages(args, ("enrich",))


def cmd_run(args: argparse.Namespace) -> int:
    from newsflow.pipeline import STAGES

    return _run_stages(args, STAGES)


# --- tools ----------------------------------------------------------------------------------------


def cmd_dlq(args: argparse.Namespace) -> int:
    from newsflow.replay import replay_dead_letters

    ensure_local_services(kafka=True, elasticsearch=False)
    report = replay_dead_letters(
        KafkaSettings(), stage=args.stage, reason=args.reason, limit=args.limit, dry_run=args.action == "list"
    )
    emit(args, report, json.dumps(report, indent=2, default=str))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from newsflow.wire import export_schemas

    changed = export_schemas(check=args.check)
    emit(args, {"changed": changed}, "\n".join(changed) or "schemas up to date")
    return 1 if args.check and changed else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from newsflow.demo.runner import run_demo

    ensure_local_services(kafka=True, elasticsearch=True)
    report = run_demo(port=args.port, timeout_s=args.timeout, echo=not args.json)
    emit(args, report, "")
    return 0 if report["articles_indexed"] >= report["articles_expected"] else 1


# --- parser ---------------------------------------------------------------------------------------


# Area packages that register commands of their own (see newsflow.commands).
COMMAND_MODULES: tuple[str, ...] = (
    "index.commands",
    "enrich.ner_eval",
    "ingest.commands_feeds",
    "alerts.commands",
    "enrich.commands",
    "ingest.commands_extract",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="newsflow", description=__doc__)
    registry = CommandRegistry(parser)
    command = registry.command

    p = command("services", cmd_services, "start, stop or inspect the local Kafka and Elasticsearch")
    p.add_argument("action", choices=["up", "down", "status", "provision"])

    for name, handler, text in (
        ("ingest", cmd_ingest, "poll feeds and fetch + extract articles into Kafka"),
        ("enrich", cmd_enrich, "detect language and entities"),
        ("run", cmd_run, "run every stage in one process"),
    ):
        p = command(name, handler, text)
        p.add_argument("--idle-exit", type=float, default=None, help="exit after this many idle seconds")
        p.add_argument("--once", action="store_true", help="poll each feed once, then keep draining")

    p = command("dlq", cmd_dlq, "list or replay dead letters to the topic they came from")
    p.add_argument("action", choices=["list", "replay"])
    p.add_argument("--stage", help="only letters of this stage")
    p.add_argument("--reason", help="only letters with this reason")
    p.add_argument("--limit", type=int, default=None)

    p = command("schema", cmd_schema, "write the wire JSON Schemas (or --check they are current)")
    p.add_argument("--check", action="store_true")

    p = command("demo", cmd_demo, "run the whole pipeline on the bundled sample site, offline")
    p.add_argument("--port", type=int, default=8765, help="port of the local sample site (0: any free)")
    p.add_argument("--timeout", type=float, default=300.0)

    for module in COMMAND_MODULES:
        importlib.import_module(module).register(registry)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    observability = ObservabilitySettings()
    logs.configure(observability.log_level, observability.log_format)
    if observability.metrics_port and args.command in {"ingest", "enrich", "index", "run"}:
        from prometheus_client import start_http_server

        start_http_server(observability.metrics_port)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a CLI reports any failure as one clear line and exit code 1
        if os.environ.get("NEWSFLOW_DEBUG"):
            raise
        sys.stderr.write(f"newsflow {args.command}: {type(exc).__name__}: {exc}\n")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
