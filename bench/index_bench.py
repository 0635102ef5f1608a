"""Index benchmark: bulk throughput and search latency over synthetic articles (default 100,000).

    .venv/bin/python bench/index_bench.py [--docs 100000] [--chunk 1000] [--queries 50] [--json]

Writes through the production path (``IndexStage`` -> ``ElasticsearchBulkSink``, external versions)
into its own alias ``bench-<random>-articles`` (deleted afterwards unless ``--keep``), one bulk request
of ``--chunk`` documents at a time (about 1.5 MB each, sized for a 512 MB heap). Then times the query
shapes of ``newsflow search`` and ``newsflow stats``. Reports medians and p95; asserts nothing.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from elasticsearch import Elasticsearch

from index.client import capabilities, make_client
from index.migrate import switch_alias
from index.search import SearchQuery, search
from index.setup import mapping_for, setup
from index.stage import ElasticsearchBulkSink, IndexAction, IndexStage
from index.stats import index_stats
from newsflow.schemas import Article, EnrichedArticle, Entity, EntityLabel, TopicScore
from newsflow.settings import ElasticsearchSettings

TOPICS = ("politics", "migration", "economy", "sport", "science", "technology", "health", "environment")
LANGUAGES = ("de", "en")


class Corpus:
    """Deterministic synthetic articles with Zipf-like word, entity and source frequencies."""

    def __init__(self, seed: int = 5) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - synthetic text, not security
        syllables = ["ka", "lo", "mi", "ter", "an", "sch", "ber", "ung", "ra", "ti", "on", "el", "gen", "st"]
        self.words = sorted(
            {"".join(self.rng.choices(syllables, k=self.rng.randint(2, 4))) for _ in range(4000)}
        )
        self.word_weights = [1 / (rank + 1) for rank in range(len(self.words))]
        self.word_cumulative = list(itertools.accumulate(self.word_weights))
        self.people = [f"Person {w.title()}" for w in self.words[:300]]
        self.orgs = [f"{w.title()} AG" for w in self.words[300:500]]
        self.places = [w.title() for w in self.words[500:700]]
        self.sources = [f"{w}.example" for w in self.words[700:730]]
        self.entity_weights = [1 / (rank + 1) for rank in range(300)]
        self.now = datetime.now(UTC)

    def text(self, n: int) -> str:
        return " ".join(self.rng.choices(self.words, cum_weights=self.word_cumulative, k=n))

    def entity(self, names: list[str], label: EntityLabel) -> Entity:
        name = self.rng.choices(names, self.entity_weights[: len(names)])[0]
        return Entity(name=name, label=label, mentions=1, first_offset=0, in_title=False)

    def article(self, n: int) -> EnrichedArticle:
        rng = self.rng
        source = rng.choices(self.sources, self.entity_weights[: len(self.sources)])[0]
        published = self.now - timedelta(minutes=rng.randint(0, 60 * 24 * 30))
        url = f"https://{source}/{n}"
        entities = {self.entity(self.people, "person") for _ in range(rng.randint(0, 3))}
        entities |= {self.entity(self.orgs, "org"), self.entity(self.places, "location")}
        return EnrichedArticle(
            article=Article(
                article_id=f"{n:064x}",
                url=url,
                canonical_url=url,
                title=self.text(8).capitalize(),
                body=". ".join(self.text(15) for _ in range(10)),
                description=self.text(20),
                authors=(self.entity(self.people, "person").name,),
                published_at=published,
                source_domain=source,
                publisher=source.split(".")[0].title(),
                feed_url=f"https://{source}/feed",
                body_hash=f"{n:064x}",
                fetched_at=published + timedelta(minutes=5),
            ),
            language=rng.choice(LANGUAGES),
            language_confidence=0.99,
            entities=tuple(sorted(entities, key=lambda e: e.name)),
            topics=tuple(TopicScore(name=t, score=0.6) for t in rng.sample(TOPICS, rng.randint(1, 2))),
            enriched_at=published + timedelta(minutes=6),
        )

    def query(self, kind: str) -> SearchQuery:
        """One query of a CLI query shape, with terms of realistic frequency."""
        rng = self.rng
        word = rng.choices(self.words[:1000], self.word_weights[:1000])[0]
        two = f"{word} {rng.choices(self.words[:1000], self.word_weights[:1000])[0]}"
        shapes: dict[str, Callable[[], SearchQuery]] = {
            "text": lambda: SearchQuery(text=two),
            "text+topic": lambda: SearchQuery(text=word, topics=(rng.choice(TOPICS),)),
            "entity": lambda: SearchQuery(entities=(rng.choice(self.people[:50]),)),
            "source+since": lambda: SearchQuery(sources=(rng.choice(self.sources),), since="7d"),
            "lang+topic+since": lambda: SearchQuery(
                text=word, language=rng.choice(LANGUAGES), topics=(rng.choice(TOPICS),), since="2d"
            ),
        }
        return shapes[kind]()


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000, 2),
    }


def bench_bulk(es: Elasticsearch, alias: str, corpus: Corpus, docs: int, chunk: int) -> dict[str, Any]:
    """Per chunk: synthesize articles (not counted), ``to_document`` + bulk write (counted)."""
    sink = ElasticsearchBulkSink(es, alias)
    stage = IndexStage()
    generate_s = index_s = write_s = 0.0
    per_request: list[float] = []
    failed = 0
    for start in range(0, docs, chunk):
        t0 = time.perf_counter()
        batch = [corpus.article(n) for n in range(start, min(docs, start + chunk))]
        t1 = time.perf_counter()
        actions: list[IndexAction] = [stage.process(item) for item in batch]
        t2 = time.perf_counter()
        failed += len(sink.write(actions))
        t3 = time.perf_counter()
        generate_s += t1 - t0
        index_s += t3 - t1
        write_s += t3 - t2
        per_request.append(t3 - t2)
    t0 = time.perf_counter()
    es.indices.refresh(index=alias)
    refresh_s = time.perf_counter() - t0
    return {
        "documents": docs,
        "chunk": chunk,
        "failed": failed,
        "indexed": int(es.count(index=alias)["count"]),
        "docs_per_s_bulk": round(docs / write_s),
        "docs_per_s_stage_and_bulk": round(docs / (index_s + refresh_s)),
        "bulk_request_ms": summary(per_request),
        "index_s": round(index_s + refresh_s, 1),
        "synthesis_s_not_counted": round(generate_s, 1),
    }


def bench_search(es: Elasticsearch, alias: str, corpus: Corpus, per_kind: int) -> dict[str, Any]:
    kinds = ("text", "text+topic", "entity", "source+since", "lang+topic+since")
    for kind in kinds:  # warm caches once per shape, like a running system
        search(es, alias, corpus.query(kind))
    samples: dict[str, list[float]] = {kind: [] for kind in [*kinds, "stats"]}
    hits: dict[str, list[int]] = {kind: [] for kind in kinds}
    for _ in range(per_kind):
        for kind in kinds:
            query = corpus.query(kind)
            t0 = time.perf_counter()
            result = search(es, alias, query)
            samples[kind].append(time.perf_counter() - t0)
            hits[kind].append(int(result["total"]))
        t0 = time.perf_counter()
        index_stats(es, alias)
        samples["stats"].append(time.perf_counter() - t0)
    everything = [s for kind in kinds for s in samples[kind]]
    return {
        "all_search_queries": summary(everything),
        "per_shape": {
            kind: {**summary(s), **({"median_hits": statistics.median(hits[kind])} if kind in hits else {})}
            for kind, s in samples.items()
        },
    }


def bench_migration(es: Elasticsearch, alias: str, source: str, corpus: Corpus) -> dict[str, Any]:
    """Copy the index into a fresh one of the same mapping and switch the alias, searching all along."""
    target = f"{source}-copy"
    mapping = mapping_for(capabilities(es))
    es.indices.create(index=target, settings=mapping["settings"], mappings=mapping["mappings"])
    stop = threading.Event()
    latencies: list[float] = []
    failures: list[str] = []

    def searcher() -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                search(es, alias, corpus.query("text+topic"))
            except Exception as exc:  # noqa: BLE001 - counted and reported, the point of this measurement
                failures.append(repr(exc))
            latencies.append(time.perf_counter() - t0)

    thread = threading.Thread(target=searcher)
    thread.start()
    try:
        report = switch_alias(es, alias, source, target, lambda doc: doc, batch_size=1000)
    finally:
        stop.set()
        thread.join()
        es.indices.delete(index=source)
    return {
        "copied": report.copied,
        "seconds": report.seconds,
        "docs_per_s": round(report.copied / report.seconds),
        "counts_equal": report.source_count == report.target_count,
        "search_during_migration": {**summary(latencies), "failed": len(failures)},
        "index": target,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=1000, help="documents per bulk request")
    parser.add_argument("--queries", type=int, default=50, help="queries per shape")
    parser.add_argument("--migrate", action="store_true", help="also time a client-side copy + alias switch")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark index")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    name = f"bench-{uuid.uuid4().hex[:8]}-articles"
    settings = ElasticsearchSettings(alias=name, index_prefix=name)
    es = make_client(settings)
    report = setup(es, settings)
    corpus = Corpus()
    try:
        results: dict[str, Any] = {
            "elasticsearch_index": report.index,
            "text_analysis": report.as_dict()["text_analysis"],
            "bulk": bench_bulk(es, name, corpus, args.docs, args.chunk),
            "search": bench_search(es, name, corpus, args.queries),
        }
        if args.migrate:
            results["migration"] = bench_migration(es, name, report.index, corpus)
    finally:
        if not args.keep:
            es.indices.delete(index=list(es.indices.get_alias(name=name)), allow_no_indices=True)
            es.indices.delete_index_template(name=report.index)
    if args.json:
        sys.stdout.write(json.dumps(results) + "\n")
    else:
        sys.stdout.write(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
