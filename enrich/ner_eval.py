"""``newsflow eval ner``: entity precision/recall/F1 of the pipeline newsflow runs, on a labelled file.

Gold and predicted spans are compared exactly (same tokens, same type) after both are mapped to
newsflow's label set: dataset tags via ``enrich.german.corpora.DATASET_LABELS`` to PER/LOC/ORG/OTH,
then, like predictions, through ``enrich.entities.LABEL_MAP`` to person/location/org/misc.
Documents are built from the file's own tokens, so tokenisation differences cannot cost points.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enrich.entities import LABEL_MAP, load_pipeline
from enrich.german.corpora import Sentence, read_corpus, spans
from newsflow.commands import CommandRegistry, emit
from newsflow.settings import SpacySettings

Span = tuple[int, int, str]


@dataclass(frozen=True)
class Counts:
    """True positives, predicted and gold span counts of one type (or of all)."""

    tp: int
    predicted: int
    gold: int

    def as_dict(self) -> dict[str, float | int]:
        precision = self.tp / self.predicted if self.predicted else 0.0
        recall = self.tp / self.gold if self.gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "tp": self.tp,
            "predicted": self.predicted,
            "gold": self.gold,
        }


def gold_spans(sentence: Sentence) -> set[Span]:
    return {(s, e, LABEL_MAP[label]) for s, e, label in spans(sentence.tags) if label in LABEL_MAP}


def predicted_spans(nlp: Any, sentences: Sequence[Sentence], batch_size: int = 64) -> list[set[Span]]:
    """Run the pipeline on documents made of the gold tokens; keep the entities users would get."""
    from spacy.tokens import Doc

    docs = (Doc(nlp.vocab, words=list(s.words)) for s in sentences)
    return [
        {(ent.start, ent.end, LABEL_MAP[ent.label_]) for ent in doc.ents if ent.label_ in LABEL_MAP}
        for doc in nlp.pipe(docs, batch_size=batch_size)
    ]


def score(gold: Sequence[set[Span]], predicted: Sequence[set[Span]]) -> dict[str, Any]:
    """Micro-averaged precision/recall/F1 over all spans, and the same per type."""
    tp: Counter[str] = Counter()
    n_pred: Counter[str] = Counter()
    n_gold: Counter[str] = Counter()
    for g, p in zip(gold, predicted, strict=True):
        n_gold.update(label for _, _, label in g)
        n_pred.update(label for _, _, label in p)
        tp.update(label for _, _, label in g & p)
    overall = Counts(sum(tp.values()), sum(n_pred.values()), sum(n_gold.values())).as_dict()
    per_type = {
        label: Counts(tp[label], n_pred[label], n_gold[label]).as_dict()
        for label in sorted(set(n_gold) | set(n_pred))
    }
    return {**overall, "per_type": per_type}


def evaluate(nlp: Any, sentences: Sequence[Sentence]) -> dict[str, Any]:
    report = score([gold_spans(s) for s in sentences], predicted_spans(nlp, sentences))
    report["sentences"] = len(sentences)
    return report


def model_for(language: str) -> str:
    """The pipeline newsflow itself uses for this language (NEWSFLOW_SPACY_MODEL_*)."""
    settings = SpacySettings()
    name = settings.model_de if language == "de" else settings.model_en
    if not name:
        raise ValueError(
            f"no spaCy pipeline configured for {language!r} (NEWSFLOW_SPACY_MODEL_{language.upper()})"
        )
    return name


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"{report['model']} on {report['file']} ({report['sentences']} sentences)",
        f"{'type':<10} {'P':>7} {'R':>7} {'F1':>7} {'gold':>6} {'pred':>6}",
    ]
    rows = [*report["per_type"].items(), ("micro", report)]
    lines += [
        f"{name:<10} {r['precision']:>7.4f} {r['recall']:>7.4f} {r['f1']:>7.4f}"
        f" {r['gold']:>6} {r['predicted']:>6}"
        for name, r in rows
    ]
    return "\n".join(lines)


def cmd_eval_ner(args: argparse.Namespace) -> int:
    name = args.model or model_for(args.lang)
    sentences = read_corpus(Path(args.file), args.format)
    report = evaluate(load_pipeline(name, args.voters or SpacySettings().voters), sentences)
    report = {**report, "model": name, "file": args.file, "language": args.lang}
    emit(args, report, format_report(report))
    return 0


def register(registry: CommandRegistry) -> None:
    p = registry.eval_command(
        "ner", cmd_eval_ner, "entity precision/recall/F1 of newsflow's spaCy pipeline on a labelled file"
    )
    p.add_argument("file", help="labelled file (GermEval 2014 TSV, or CoNLL with the tag in the last column)")
    p.add_argument("--format", choices=["germeval", "conll"], default="conll")
    p.add_argument("--lang", choices=["de", "en"], required=True)
    p.add_argument("--model", help="another spaCy pipeline (name or path) instead of the configured one")
    p.add_argument(
        "--voters",
        type=int,
        help="models of a voting pipeline that run (default: NEWSFLOW_SPACY_VOTERS, else all)",
    )
