"""Throughput of the German NER pipeline in one process: newsflow's path vs raw ``nlp.pipe``.

newsflow's path is ``EntityRecognizer.recognise`` (the components NER needs, plus mapping and
per-article aggregation); raw is ``nlp.pipe`` over the same loaded components. Both run on the same
texts in one run, so the ratio is fair on a shared machine. Texts: GermEval 2014 dev sentences
joined into article-sized chunks (reference data, read from ../shared, never copied).

    OMP_NUM_THREADS=1 .venv/bin/python bench/german_ner.py [--json] [--articles 200] [--model NAME]
        [--voters N]  # models of a voting pipeline that run (default: all)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from enrich.entities import EntityRecognizer, load_pipeline
from enrich.german.corpora import read_germeval
from enrich.german.ensemble import member_count
from newsflow.settings import SpacySettings

PROJECT = Path(__file__).resolve().parents[1]
DEV = PROJECT.parent / "shared/data/ner/germeval2014/NER-de-dev.tsv"
SENTENCES_PER_ARTICLE = 20


def articles(limit: int) -> list[str]:
    sentences = [" ".join(s.words) for s in read_germeval(DEV)]
    chunks = [
        " ".join(sentences[i : i + SENTENCES_PER_ARTICLE])
        for i in range(0, len(sentences), SENTENCES_PER_ARTICLE)
    ]
    return chunks[:limit]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--articles", type=int, default=200)
    parser.add_argument("--model", default=SpacySettings().model_de)
    parser.add_argument("--batch-size", type=int, default=SpacySettings().batch_size)
    parser.add_argument(
        "--voters", type=int, default=SpacySettings().voters, help="models of the vote to run"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    texts = articles(args.articles)
    recognizer = EntityRecognizer({"de": args.model}, args.voters)
    recognizer.recognise([(texts[0], 0)], "de")  # load and warm up outside the timings
    nlp = load_pipeline(args.model, args.voters)
    tokens = sum(len(doc) for doc in nlp.tokenizer.pipe(texts))

    start = time.perf_counter()
    for _doc in nlp.pipe(texts, batch_size=args.batch_size):
        pass
    raw_s = time.perf_counter() - start
    start = time.perf_counter()
    recognizer.recognise([(text, 0) for text in texts], "de", batch_size=args.batch_size)
    newsflow_s = time.perf_counter() - start

    report = {
        "model": args.model,
        "voters": member_count(nlp),
        "articles": len(texts),
        "tokens": tokens,
        "raw_nlp_pipe_tokens_per_s": round(tokens / raw_s),
        "newsflow_tokens_per_s": round(tokens / newsflow_s),
        "ratio": round(raw_s / newsflow_s, 3),
    }
    sys.stdout.write(
        json.dumps(report) + "\n" if args.json else "\n".join(f"{k}: {v}" for k, v in report.items()) + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
