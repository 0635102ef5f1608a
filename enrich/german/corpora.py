"""Readers for the NER corpora in ``../shared/data/ner`` and the mapping of their labels to ours.

Every reader yields :class:`Sentence` objects with IOB2 tags whose types are already reduced to
the four spaCy labels newsflow's pipelines emit for German (``PER``, ``LOC``, ``ORG``, ``OTH``), so
training and evaluation share one notion of what an entity is.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

# Dataset entity types to the spaCy labels of the German pipeline (LABEL_MAP in enrich/entities.py
# then maps those to person/location/org/misc). Types not listed are not entities for newsflow
# (GermEval *deriv/*part such as "deutschen", MobIE dates, times, routes, triggers, ...) and become O.
DATASET_LABELS: dict[str, str] = {
    # GermEval 2014 (outer column), WikiANN, Europeana, CoNLL-2003 style sets.
    "PER": "PER",
    "LOC": "LOC",
    "ORG": "ORG",
    "OTH": "OTH",
    "MISC": "OTH",
    # OntoNotes-style English sets.
    "PERSON": "PER",
    "GPE": "LOC",
    "FAC": "LOC",
    "NORP": "OTH",
    "EVENT": "OTH",
    "PRODUCT": "OTH",
    "WORK_OF_ART": "OTH",
    "LAW": "OTH",
    "LANGUAGE": "OTH",
    # MobIE's fine-grained types. Routes ("A 9", "S1") and stops are left out: GermEval's guidelines
    # do not make line numbers or platforms locations, so they would teach the wrong boundary.
    "person": "PER",
    "organization": "ORG",
    "organization-company": "ORG",
    "location": "LOC",
    "location-city": "LOC",
    "location-street": "LOC",
}


@dataclass(frozen=True)
class Sentence:
    """Tokens with IOB2 tags over the labels PER/LOC/ORG/OTH."""

    words: tuple[str, ...]
    tags: tuple[str, ...]


def map_tag(raw: str) -> str:
    """One dataset tag ("B-PERderiv", "I-location-city", "O", "B-PEr") as IOB2 over our labels."""
    if raw in {"O", ""} or "-" not in raw:
        return "O"
    prefix, _, kind = raw.partition("-")
    if prefix not in {"B", "I"}:
        return "O"
    label = DATASET_LABELS.get(kind) or DATASET_LABELS.get(kind.upper())
    return f"{prefix}-{label}" if label else "O"


def repair_iob(tags: Iterable[str]) -> tuple[str, ...]:
    """Turn an I- that follows O or another type into B- (IOB1 files, and types mapped to O)."""
    fixed: list[str] = []
    previous = "O"
    for tag in tags:
        previous = "B-" + tag[2:] if tag.startswith("I-") and previous[2:] != tag[2:] else tag
        fixed.append(previous)
    return tuple(fixed)


def _sentence(rows: list[tuple[str, str]]) -> Sentence:
    return Sentence(tuple(w for w, _ in rows), repair_iob(map_tag(t) for _, t in rows))


def read_germeval(path: Path) -> Iterator[Sentence]:
    """GermEval 2014 TSV: ``idx token outer inner``, ``#`` source lines; only the outer tags count."""
    rows: list[tuple[str, str]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") and not rows:
            continue
        cols = line.split("\t")
        if len(cols) < 3:
            if rows:
                yield _sentence(rows)
            rows = []
            continue
        rows.append((cols[1], cols[2]))
    if rows:
        yield _sentence(rows)


def read_conll(path: Path) -> Iterator[Sentence]:
    """CoNLL with the token first and the tag last (2 or 4 columns), blank lines between sentences.

    ``-DOCSTART-`` lines are skipped and WikiANN's ``de:`` / ``en:`` token prefixes are removed.
    """
    rows: list[tuple[str, str]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        cols = line.split()
        if not cols or cols[0] == "-DOCSTART-":
            if rows:
                yield _sentence(rows)
            rows = []
            continue
        if len(cols) < 2:
            continue
        word = cols[0]
        if len(word) > 3 and word[2] == ":" and word[:2].isalpha() and word[:2].islower():
            word = word[3:]
        rows.append((word, cols[-1]))
    if rows:
        yield _sentence(rows)


def split_long(sentences: Iterable[Sentence], max_words: int = 60) -> Iterator[Sentence]:
    """Cut unsegmented text (Europeana has no sentence breaks) after sentence-final punctuation.

    A cut never falls inside an entity; a run without any full stop is cut at ``max_words`` anyway
    so no training example grows without bound.
    """
    for sentence in sentences:
        start = 0
        for i, word in enumerate(sentence.words):
            at_end = word in {".", "!", "?"} and i - start >= 3
            too_long = i + 1 - start >= max_words
            next_inside = i + 1 < len(sentence.tags) and sentence.tags[i + 1].startswith("I-")
            if (at_end or too_long) and not next_inside:
                yield Sentence(sentence.words[start : i + 1], sentence.tags[start : i + 1])
                start = i + 1
        if start < len(sentence.words):
            yield Sentence(sentence.words[start:], sentence.tags[start:])


def read_corpus(path: Path, fmt: str) -> list[Sentence]:
    """Sentences of a file in ``germeval`` or ``conll`` format."""
    if fmt == "germeval":
        return list(read_germeval(path))
    if fmt == "conll":
        return list(read_conll(path))
    raise ValueError(f"unknown NER file format {fmt!r} (germeval or conll)")


def spans(tags: Iterable[str]) -> set[tuple[int, int, str]]:
    """Entity spans ``(start, end, label)`` of an IOB2 tag sequence."""
    found: set[tuple[int, int, str]] = set()
    start, label = -1, ""
    for i, tag in enumerate([*tags, "O"]):
        if label and not (tag.startswith("I-") and tag[2:] == label):
            found.add((start, i, label))
            label = ""
        if tag.startswith("B-") or (tag.startswith("I-") and not label):
            start, label = i, tag[2:]
    return found
