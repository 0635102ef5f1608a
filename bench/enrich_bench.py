"""Enrich benchmark: the stage's article rate against the raw ``nlp.pipe`` rate, in one run.

    .venv/bin/python bench/enrich_bench.py [--articles 300] [--rounds 2] [--json]

Texts: the English pages of the bundled demo site, extracted as ingest does, repeated to
``--articles``. Raw: the same spaCy pipeline with the same components (``load_pipeline``: ner only)
over the same "title + body" texts with ``nlp.pipe``. Stage: ``EnrichStage.process_batch`` on
batches of the loop's size (language detection, NER, entity aggregation, alias table, stories), once
without topics (compared with raw ``nlp.pipe``) and once with topics, compared with the raw
components it runs: ``nlp.pipe`` plus the sentence encoder over the same sentences (title and the first
``MAX_EMBEDDED_SENTENCES`` body sentences) — what the stage adds on top of its models.
Rounds alternate raw and stage so a busy machine slows both alike; the best round of each is kept.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from enrich.aliases import AliasTable
from enrich.entities import load_pipeline
from enrich.language import LanguageDetector
from enrich.stage import MAX_NER_CHARS, EnrichStage
from enrich.stories import StoryClusterer
from enrich.topics import (
    MAX_EMBEDDED_SENTENCES,
    MAX_SENTENCE_CHARS,
    Taxonomy,
    TopicClassifier,
    split_sentences,
)
from ingest.extract import extract
from newsflow.demo.server import demo_site_root
from newsflow.schemas import Article
from newsflow.settings import EnrichSettings, LoopSettings, SpacySettings


def corpus(n: int) -> list[Article]:
    pages = sorted((demo_site_root() / "articles").glob("en-*.html"))
    base: list[Article] = []
    for page in pages:
        extracted = extract(page.read_bytes(), url=f"https://bench.example/{page.name}")
        base.append(
            Article(
                article_id=page.stem,
                url=f"https://bench.example/{page.name}",
                canonical_url=f"https://bench.example/{page.name}",
                title=extracted.title,
                body=extracted.body,
                language="en",
                source_domain="bench.example",
                body_hash=page.stem,
                fetched_at=datetime.now(UTC),
            )
        )
    # distinct ids, so the alias table and stories do their normal work for every copy
    return [replace_id(base[i % len(base)], i) for i in range(n)]


def replace_id(article: Article, index: int) -> Article:
    return article.model_copy(update={"article_id": f"{article.article_id}-{index}"})


def timed(run: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    run()
    return n / (time.perf_counter() - start)


def make_stage(spacy: SpacySettings, topics: bool) -> EnrichStage:
    from enrich.entities import EntityRecognizer

    enrich = EnrichSettings()
    return EnrichStage(
        LanguageDetector(enrich.languages, enrich.hint_weight),
        EntityRecognizer({"en": spacy.model_en}),
        topics=TopicClassifier(Taxonomy.load()) if topics else None,
        aliases=AliasTable(None),
        stories=StoryClusterer(None),
        batch_size=spacy.batch_size,
    )


def run_stage(stage: EnrichStage, articles: Sequence[Article], batch: int) -> None:
    for start in range(0, len(articles), batch):
        results = stage.process_batch(articles[start : start + batch])
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--articles", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    spacy = SpacySettings()
    batch = LoopSettings().batch_size
    articles = corpus(args.articles)
    texts = [f"{a.title}\n\n{a.body}"[:MAX_NER_CHARS] for a in articles]
    nlp = load_pipeline(spacy.model_en)
    stage = make_stage(spacy, topics=False)
    with_topics = make_stage(spacy, topics=True)
    # warm up: model loading is not throughput
    list(nlp.pipe(texts[:8]))
    run_stage(stage, articles[:8], batch)
    run_stage(with_topics, articles[:8], batch)

    encoder = TopicClassifier(Taxonomy.load()).encoder
    sentences = [
        s[:MAX_SENTENCE_CHARS]
        for a in articles
        for s in [a.title, *split_sentences(a.body)[:MAX_EMBEDDED_SENTENCES]]
        if s
    ]
    encoder.encode(sentences[:8])

    def raw_components() -> None:
        list(nlp.pipe(texts, batch_size=spacy.batch_size))
        for start in range(0, len(sentences), 256):
            encoder.encode(sentences[start : start + 256])

    rates: dict[str, list[float]] = {
        "raw_nlp_pipe": [],
        "stage": [],
        "raw_nlp_pipe_and_encoder": [],
        "stage_with_topics": [],
    }
    for round_ in range(args.rounds):
        ids = [replace_id(a, 10_000 * (round_ + 1) + i) for i, a in enumerate(articles)]
        rates["raw_nlp_pipe"].append(
            timed(lambda: list(nlp.pipe(texts, batch_size=spacy.batch_size)), len(texts))
        )
        rates["stage"].append(timed(lambda: run_stage(stage, ids, batch), len(ids)))  # noqa: B023 - called at once
        rates["raw_nlp_pipe_and_encoder"].append(timed(raw_components, len(texts)))
        rates["stage_with_topics"].append(timed(lambda: run_stage(with_topics, ids, batch), len(ids)))  # noqa: B023
    best = {name: round(max(values), 2) for name, values in rates.items()}
    report: dict[str, Any] = {
        "articles": len(articles),
        "mean_chars": round(sum(len(t) for t in texts) / len(texts)),
        "components": list(nlp.pipe_names),
        "articles_per_s": best,
        "stage_vs_raw": round(best["stage"] / best["raw_nlp_pipe"], 3),
        "stage_with_topics_vs_raw": round(best["stage_with_topics"] / best["raw_nlp_pipe"], 3),
        "stage_with_topics_vs_raw_components": round(
            best["stage_with_topics"] / best["raw_nlp_pipe_and_encoder"], 3
        ),
        "rounds": {name: [round(v, 2) for v in values] for name, values in rates.items()},
    }
    sys.stdout.write(json.dumps(report, indent=None if args.json else 2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
