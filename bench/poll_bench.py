"""Poller benchmark: N feeds (default 5,000) served on 127.0.0.1, polled by one poller process.

    .venv/bin/python bench/poll_bench.py [--feeds 5000] [--items 10] [--runs 3] [--concurrency 200]

The feeds are small RSS documents generated in memory (``--items`` items each, ~2-3 KB) and served
by a minimal asyncio HTTP/1.1 server with keep-alive and ETags, in its own process. Each run is a
fresh poller process (``PollerService``, the production code path: async fetches, robots.txt,
feed parsing, dedupe, SQLite state, links produced to the local Kafka and acknowledged):

- cold pass: every feed is new, every item is emitted (N x items link messages);
- warm pass: every feed polled again with its validators, the server answers 304.

All feeds share one host, so the per-host limits are lifted to the global concurrency for the
benchmark (production default: 2 in flight and 1 s spacing per host). Reported: feeds polled per
second per pass (wall time, and per CPU-second of the poller process, which a busy shared machine
distorts less) and the poller's peak RSS, median over runs. Kafka topics are per run and deleted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient

from ingest.feeds import FeedRegistry, FeedSpec
from ingest.http import AsyncHttpClient
from ingest.service import PollerService
from newsflow.kafka_io import client_config, ensure_topics, make_producer
from newsflow.loop import StageStats
from newsflow.services import LocalServices
from newsflow.settings import HttpSettings, IngestSettings, KafkaSettings

HOST = "127.0.0.1"


# --- the feed server (child process) ------------------------------------------------------------


def _feed(i: int, items: int, port: int) -> bytes:
    entries = "".join(
        f"<item><title>Story {i}-{j} about the budget debate</title>"
        f"<link>http://{HOST}:{port}/articles/{i}/{j}.html</link>"
        f"<description>Short teaser number {j} of feed {i}, as news feeds carry them.</description>"
        f"<pubDate>Fri, 27 Nov 2026 {j % 24:02d}:00:00 GMT</pubDate></item>"
        for j in range(items)
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Feed {i}</title>'
        f"<link>http://{HOST}:{port}/</link><description>bench</description>{entries}</channel></rss>"
    ).encode()


async def _serve(port: int, items: int, ready: Any) -> None:
    cache: dict[int, bytes] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                path = head.split(" ", 2)[1]
                if_none_match = next(
                    (
                        line.split(":", 1)[1].strip()
                        for line in head.split("\r\n")
                        if line.lower().startswith("if-none-match:")
                    ),
                    None,
                )
                if path.startswith("/f/"):
                    i = int(path[3:].split(".")[0])
                    etag = f'"{i}-1"'
                    if if_none_match == etag:
                        writer.write(
                            f"HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nContent-Length: 0\r\n\r\n".encode()
                        )
                    else:
                        body = cache.get(i) or cache.setdefault(i, _feed(i, items, port))
                        writer.write(
                            (
                                "HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml; charset=utf-8\r\n"
                                f"ETag: {etag}\r\nContent-Length: {len(body)}\r\n\r\n"
                            ).encode()
                            + body
                        )
                else:
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, HOST, port, backlog=4096)
    ready.set()
    async with server:
        await server.serve_forever()


def _server_main(port: int, items: int, ready: Any) -> None:
    asyncio.run(_serve(port, items, ready))


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


# --- one measured run (fresh process) --------------------------------------------------------------


def _one_run(port: int, feeds: int, items: int, concurrency: int) -> dict[str, Any]:
    kafka = KafkaSettings(topic_prefix=f"bench-{uuid.uuid4().hex[:8]}.", partitions=3)
    ensure_topics(kafka, ["links"])
    http = HttpSettings(allowed_hosts=(HOST,))
    with tempfile.TemporaryDirectory() as tmp:
        registry = FeedRegistry(
            feeds=tuple(
                FeedSpec(url=f"http://{HOST}:{port}/f/{i}.rss", publisher="bench") for i in range(feeds)
            )
        )
        registry.save(Path(tmp) / "feeds.yaml")
        ingest = IngestSettings(
            feeds_file=Path(tmp) / "feeds.yaml",
            state_dir=Path(tmp) / "state",
            concurrency=concurrency,
            per_host_concurrency=concurrency,
            per_host_delay_s=0.0,
            max_items_per_feed=items,
        )
        producer = make_producer(kafka)
        stats = StageStats("poll")
        service = PollerService(kafka, http, ingest, producer, stats)

        async def timed_pass() -> tuple[float, float, int]:
            async with AsyncHttpClient(http, max_connections=concurrency) as client:
                poller = service.make_poller(client)
                started, cpu = time.perf_counter(), time.process_time()
                emitted = await service.poll_pass(poller)
                return time.perf_counter() - started, time.process_time() - cpu, emitted

        try:
            cold_s, cold_cpu_s, cold_links = asyncio.run(timed_pass())
            service.store.save_feeds(
                [replace(s, next_poll_at=0.0) for s in service.store.all_feeds().values()]
            )
            warm_s, warm_cpu_s, warm_links = asyncio.run(timed_pass())
        finally:
            service.close()
            producer.close()
            admin = KafkaAdminClient(**client_config(kafka))
            admin.delete_topics([kafka.topic("links")])
            admin.close()
    outcomes = stats.as_dict()
    return {
        "cold_s": cold_s,
        "cold_feeds_per_s": feeds / cold_s,
        "cold_links": cold_links,
        "cold_feeds_per_cpu_s": feeds / cold_cpu_s,
        "warm_s": warm_s,
        "warm_feeds_per_s": feeds / warm_s,
        "warm_links": warm_links,
        "warm_feeds_per_cpu_s": feeds / warm_cpu_s,
        "outcomes": outcomes,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--feeds", type=int, default=5000)
    parser.add_argument("--items", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--one-run", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_run:
        print(json.dumps(_one_run(args.one_run, args.feeds, args.items, args.concurrency)))
        return 0

    LocalServices().up(kafka=True, elasticsearch=False)
    port = _free_port()
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    server = context.Process(target=_server_main, args=(port, args.items, ready), daemon=True)
    server.start()
    try:
        if not ready.wait(30):
            raise RuntimeError("feed server did not start")
        runs = []
        for _ in range(args.runs):
            command = [sys.executable, __file__, "--one-run", str(port), "--feeds", str(args.feeds)]
            command += ["--items", str(args.items), "--concurrency", str(args.concurrency)]
            done = subprocess.run(command, check=True, capture_output=True, text=True)  # noqa: S603 - our own script
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    finally:
        server.terminate()
        server.join(10)
    report = {
        "feeds": args.feeds,
        "items_per_feed": args.items,
        "concurrency": args.concurrency,
        "runs": args.runs,
        "cold_feeds_per_s_median": statistics.median(r["cold_feeds_per_s"] for r in runs),
        "warm_feeds_per_s_median": statistics.median(r["warm_feeds_per_s"] for r in runs),
        # Poller CPU only (the server and Kafka run elsewhere): steadier than wall time on a shared machine.
        "cold_feeds_per_cpu_s_median": statistics.median(r["cold_feeds_per_cpu_s"] for r in runs),
        "warm_feeds_per_cpu_s_median": statistics.median(r["warm_feeds_per_cpu_s"] for r in runs),
        "peak_rss_mb_median": statistics.median(r["peak_rss_mb"] for r in runs),
        "per_run": runs,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
