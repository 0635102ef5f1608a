"""Alert benchmarks: match throughput with 1,000 and 10,000 rules, and the delay from "article
indexed" to "webhook received" on the local servers.

    .venv/bin/python bench/alerts_bench.py                 # both, prints one JSON object
    .venv/bin/python bench/alerts_bench.py --skip-delay    # throughput only (no servers needed)

Throughput: synthetic articles (300 words from a Zipf-distributed 20,000-word vocabulary, 4 entities,
3 topics) against synthetic rules (queries with OR/AND/phrases, entity rules, topic rules) drawn
from the same vocabulary; median of 5 runs. The indexed rule matcher is compared with evaluating
every rule per article (the naive loop), on a sample.

Delay: an index loop and an alert worker consume the same enriched topic (as in production);
articles are produced one at a time; "indexed" is when Elasticsearch acknowledged the bulk write
with the article, "received" when the local webhook receiver got the alert. Median and p95.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test helpers below live in tests/

from alerts.matcher import ArticleView, RuleMatcher
from alerts.rules import Rule, RuleSet
from alerts.stage import AlertWorker
from index.client import make_client
from index.setup import setup
from index.stage import ElasticsearchBulkSink, IndexAction, IndexStage
from newsflow.errors import StageError
from newsflow.kafka_io import ensure_topics, make_consumer, make_producer
from newsflow.loop import DeadLetterWriter, StreamLoop
from newsflow.schemas import EnrichedArticle
from newsflow.services import LocalServices
from newsflow.settings import AlertSettings, ElasticsearchSettings, KafkaSettings, LoopSettings
from tests.test_alerts_support import enriched, webhook_receiver


def seeded(seed: int) -> random.Random:
    """Reproducible synthetic data, not cryptography."""
    return random.Random(seed)  # noqa: S311 - see the docstring


def vocabulary(size: int = 20_000) -> list[str]:
    rng = seeded(1)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(3, 10))))
    return sorted(words)


def people(words: list[str], n: int = 2000) -> list[str]:
    """The persons articles mention and entity rules name (shared, so entity rules can match)."""
    rng = seeded(4)
    return [f"{rng.choice(words).title()} {rng.choice(words).title()}" for _ in range(n)]


def corpus(words: list[str], n: int, seed: int = 2) -> list[EnrichedArticle]:
    rng = seeded(seed)
    weights = [1 / (rank + 1) for rank in range(len(words))]
    persons = people(words)
    articles = []
    for i in range(n):
        body = " ".join(rng.choices(words, weights, k=300))
        title = " ".join(rng.choices(words, weights, k=8))
        names = rng.sample(persons, 4)
        articles.append(
            enriched(
                i,
                title,
                body,
                story=f"s{i}",
                entities=tuple((name, "person", (name, name.split()[-1])) for name in names),
                topics=tuple((f"topic{rng.randrange(40)}", round(rng.random(), 2)) for _ in range(3)),
            )
        )
    return articles


def rules(words: list[str], n: int, seed: int = 3) -> list[Rule]:
    rng = seeded(seed)
    mid = words[2000:]  # rules name specific words, not the most frequent ones
    persons = people(words)
    made = []
    for i in range(n):
        kind = i % 4
        fields: dict[str, Any]
        if kind == 0:
            fields = {"query": " OR ".join(rng.sample(mid, 3))}
        elif kind == 1:
            a, b, c = rng.sample(mid, 3)
            fields = {"query": f'({a} OR "{b} {c}") AND NOT {rng.choice(mid)}'}
        elif kind == 2:
            fields = {"entities": [rng.choice(persons)], "languages": ["en"]}
        else:
            fields = {
                "topics_any": [f"topic{rng.randrange(40)}"],
                "query": rng.choice(mid),
                "min_topic_score": 0.3,
            }
        made.append(Rule.model_validate({"id": f"r{i}", "channels": ["kafka"], **fields}))
    return made


def throughput(rule_count: int, articles: list[EnrichedArticle], words: list[str]) -> dict[str, Any]:
    rule_set = rules(words, rule_count)
    matcher = RuleMatcher(rule_set)
    runs = []
    hits = 0
    for _ in range(5):
        matcher.evaluated = 0
        hits = 0
        started = time.perf_counter()
        for article in articles:
            hits += len(matcher.match(article))
        runs.append(len(articles) / (time.perf_counter() - started))
    evaluated = matcher.evaluated / len(articles)
    sample = articles[:50]
    started = time.perf_counter()
    compiled = list(matcher.rules.values())
    for article in sample:
        view = ArticleView.of(article)
        for rule in compiled:
            rule.match(view)
    naive = len(sample) / (time.perf_counter() - started)
    return {
        "rules": rule_count,
        "articles": len(articles),
        "articles_per_s_median": round(statistics.median(runs)),
        "articles_per_s_runs": [round(r) for r in runs],
        "rules_evaluated_per_article": round(evaluated, 1),
        "matches_per_article": round(hits / len(articles), 2),
        "naive_loop_articles_per_s": round(naive, 1),
    }


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def delay(n: int, interval_s: float) -> dict[str, Any]:
    LocalServices().up(kafka=True, elasticsearch=True)
    tag = uuid.uuid4().hex[:8]
    kafka = KafkaSettings(topic_prefix=f"bench-{tag}.", group_prefix=f"bench-{tag}", partitions=2)
    es_settings = ElasticsearchSettings(alias=f"bench-{tag}-articles", index_prefix=f"bench-{tag}-articles")
    loop_settings = LoopSettings()
    ensure_topics(kafka, ("enriched", "dead-letters", "alerts"))
    es = make_client(es_settings)
    setup(es, es_settings)
    indexed: dict[str, float] = {}

    class TimedSink(ElasticsearchBulkSink):
        def write(self, results: Sequence[IndexAction]) -> Sequence[tuple[int, StageError]]:
            failures = super().write(results)
            now = time.time()
            for action in results:
                indexed.setdefault(action.doc_id, now)
            return failures

    stop = threading.Event()
    producer = make_producer(kafka)
    with webhook_receiver() as receiver, tempfile.TemporaryDirectory() as tmp:
        rules_path = Path(tmp) / "rules.yaml"
        RuleSet(
            rules=(Rule.model_validate({"id": "bench", "query": "migration", "channels": [receiver.url]}),)
        ).save(rules_path)
        alert_settings = AlertSettings(rules=rules_path, history_index=f"bench-{tag}-alerts")
        index_loop: StreamLoop[Any, Any] = StreamLoop(
            IndexStage(),
            make_consumer(kafka, loop_settings, "index", [kafka.topic("enriched")]),
            TimedSink(es, es_settings.alias),
            DeadLetterWriter(producer, kafka.topic("dead-letters"), "index"),
            loop_settings,
        )
        worker = AlertWorker(kafka, es_settings, loop_settings, alert_settings, producer)
        threads = [
            threading.Thread(target=index_loop.run, args=(stop,), daemon=True),
            threading.Thread(target=worker.run, args=(stop,), daemon=True),
        ]
        for thread in threads:
            thread.start()
        time.sleep(5)  # both consumers joined their groups
        produced: dict[str, float] = {}
        for i in range(n):
            article = enriched(i, f"Migration report {i}", "New figures on migration.", story=f"bench-{i}")
            produced[article.article.article_id] = time.time()
            producer.send(
                kafka.topic("enriched"), key=article.key(), value=article.model_dump_json().encode()
            )
            producer.flush()
            time.sleep(interval_s)
        deadline = time.time() + 60
        while len(receiver.requests) < n and time.time() < deadline:
            time.sleep(0.2)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        index_loop.consumer.close()
        received = {r.body["items"][0]["article_id"]: r.at for r in receiver.requests}
    producer.close()
    for name in es.indices.get(index=f"{es_settings.index_prefix}-*,{alert_settings.history_index}"):
        es.indices.delete(index=name)
    templates = es.options(ignore_status=404).indices.get_index_template(name=f"{es_settings.index_prefix}-*")
    for template in templates.get("index_templates", []):
        es.indices.delete_index_template(name=template["name"])
    es.close()
    from_indexed = [received[a] - indexed[a] for a in received if a in indexed]
    from_enriched = [received[a] - produced[a] for a in received]
    return {
        "articles": n,
        "alerts_received": len(received),
        "loop_linger_s": loop_settings.linger_s,
        "indexed_to_webhook_s": {
            "median": round(statistics.median(from_indexed), 3),
            "p95": round(percentile(from_indexed, 0.95), 3),
        },
        "enriched_to_webhook_s": {
            "median": round(statistics.median(from_enriched), 3),
            "p95": round(percentile(from_enriched, 0.95), 3),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--articles", type=int, default=1000)
    parser.add_argument("--delay-articles", type=int, default=60)
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between produced articles")
    parser.add_argument("--skip-delay", action="store_true")
    args = parser.parse_args()
    words = vocabulary()
    articles = corpus(words, args.articles)
    report: dict[str, Any] = {"throughput": [throughput(n, articles, words) for n in (1_000, 10_000)]}
    if not args.skip_delay:
        report["delay"] = delay(args.delay_articles, args.interval)
    sys.stdout.write(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
