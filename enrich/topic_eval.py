"""``newsflow eval topics``: accuracy, macro-F1 and confusion of the topic classifier on a labelled set.

A data set is a folder with one sub-folder per label (one article per file: first line the title,
the rest the body) or a CSV file ``label;text``. Dataset labels map to topic ids by id or alias, or by
an explicit ``--labels`` YAML mapping. Each article is predicted as its best-scoring topic among the
topics the data set's labels map to (a single-label set cannot be scored on topics it has no label for).
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from enrich.language import LanguageDetector
from enrich.topics import Document, TopicClassifier

BATCH = 32


@dataclass(frozen=True)
class Example:
    label: str
    title: str
    body: str


def _split_title(text: str) -> tuple[str, str]:
    title, _, body = text.strip().partition("\n")
    return title.strip(), body.strip()


def load_dataset(path: Path) -> list[Example]:
    """A folder of label folders, or a ``label;text`` CSV file (header optional)."""
    examples: list[Example] = []
    if path.is_dir():
        for folder in sorted(p for p in path.iterdir() if p.is_dir()):
            for file in sorted(f for f in folder.iterdir() if f.is_file()):
                text = file.read_bytes().decode("utf-8", errors="replace")
                examples.append(Example(folder.name, *_split_title(text)))
    else:
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.reader(handle, delimiter=";"):
                if len(row) < 2 or row[0].strip().lower() == "label":
                    continue
                examples.append(Example(row[0].strip(), *_split_title(";".join(row[1:]))))
    if not examples:
        raise ValueError(f"no labelled articles in {path}")
    return examples


def label_mapping(
    labels: Sequence[str], classifier: TopicClassifier, mapping_file: Path | None
) -> dict[str, str]:
    """Dataset label → topic id, from the mapping file or else by id/alias; unmapped labels are an error."""
    explicit: dict[str, str] = {}
    if mapping_file is not None:
        explicit = {str(k): str(v) for k, v in (yaml.safe_load(mapping_file.read_text()) or {}).items()}
    mapping: dict[str, str] = {}
    for label in sorted(set(labels)):
        topic = classifier.taxonomy.resolve(explicit.get(label, label))
        if topic is None:
            raise ValueError(f"dataset label {label!r} maps to no topic; give --labels MAPPING.yaml")
        mapping[label] = topic
    shared = {t for t in mapping.values() if list(mapping.values()).count(t) > 1}
    if shared:
        raise ValueError(
            f"several dataset labels map to {sorted(shared)}; predictions cannot tell them apart"
        )
    return mapping


def _batches(items: Sequence[Example], size: int) -> Iterator[Sequence[Example]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def predict(
    examples: Sequence[Example], classifier: TopicClassifier, candidates: set[str], detector: LanguageDetector
) -> list[str]:
    predictions: list[str] = []
    for batch in _batches(examples, BATCH):
        docs = [Document(e.title, e.body, detector.detect(f"{e.title}\n{e.body}").language) for e in batch]
        for matches in classifier.match(docs):
            predictions.append(next(m.topic for m in matches if m.topic in candidates))
    return predictions


def metrics(gold: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 over the gold labels, per-label precision/recall/F1, confusion gold → predicted."""
    labels = sorted(set(gold))
    confusion: dict[str, Counter[str]] = {label: Counter() for label in labels}
    for g, p in zip(gold, predicted, strict=True):
        confusion[g][p] += 1
    per_label: dict[str, dict[str, float]] = {}
    for label in labels:
        tp = confusion[label][label]
        predicted_n = sum(row[label] for row in confusion.values())
        support = sum(confusion[label].values())
        precision = tp / predicted_n if predicted_n else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[label] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "support": support,
        }
    accuracy = sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold)
    return {
        "accuracy": round(accuracy, 4),
        "macro_f1": round(sum(v["f1"] for v in per_label.values()) / len(per_label), 4),
        "per_label": per_label,
        "confusion": {g: dict(sorted(row.items())) for g, row in confusion.items()},
        "n": len(gold),
    }


def evaluate(
    dataset: Path, classifier: TopicClassifier, mapping_file: Path | None = None, limit: int | None = None
) -> dict[str, Any]:
    examples = load_dataset(dataset)
    if limit is not None:
        examples = examples[:: max(1, len(examples) // limit)][:limit]
    mapping = label_mapping([e.label for e in examples], classifier, mapping_file)
    detector = LanguageDetector(("de", "en"))
    topics = predict(examples, classifier, set(mapping.values()), detector)
    # Report in the data set's own labels: a prediction is the label whose topic was chosen.
    back = {topic: label for label, topic in mapping.items()}
    report = metrics([e.label for e in examples], [back[t] for t in topics])
    report["labels"] = mapping
    report["dataset"] = str(dataset)
    return report
