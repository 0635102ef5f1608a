"""The cross-article alias table: spelling variants of one entity share one canonical name.

Each (label, name) variant seen is stored with its mention count and a cluster. A new variant joins a
cluster when it is the same name up to case and accents, a German genitive of a known name
("Mexikos" → "Mexiko"), a person with the same surname whose given names are a close misspelling
("Andreas Manuel López Obrador") or a short form of a known one ("Tony" in "Antony"), the same given
names with a misspelt surname ("Olaf Scholtz"), or a surname
alone that belongs to exactly one known person. The canonical name of a cluster is its most
mentioned variant (ties: the longer), so one early misspelling cannot become the name users see;
abbreviations no rule can join ("US", "USA") come from a hand-written seed file that pins the name.
With ``english_place_names`` German place names ("Mexiko", "Wien") also join their English ones
(canonical: English) through a table generated from CLDR (``enrich/places.py``); by default an
article keeps the place names of its language.

Kept in SQLite (``NEWSFLOW_ENRICH_STATE_DIR``) so merges survive restarts; ``path=None`` keeps it in
memory, which still merges variants within one article (``newsflow analyze``).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from importlib.resources import files
from pathlib import Path

import yaml

from enrich.topics import fold
from newsflow.schemas import Entity, EntityLabel

PERSON_NAME_SIMILARITY = 0.85  # folded full names, same surname: "andreas …" vs "andres …" is 0.98
SURNAME_SIMILARITY = 0.8  # with identical given names: "scholtz" vs "scholz" is 0.92
OTHER_NAME_SIMILARITY = 0.92  # organisations and places: only near-identical long names
MIN_FUZZY_LENGTH = 8
MIN_SHORT_GIVEN_NAME = 3
SEED_FILE = "taxonomy/aliases.yaml"
# German->English place names (generated from CLDR), loaded before SEED_FILE so the hand-written seeds
# win where both name a group.
PLACES_FILE = "taxonomy/places.yaml"


@dataclass
class Variant:
    name: str
    label: EntityLabel
    cluster: int
    mentions: int


def _surname(key: str) -> str:
    return key.rsplit(" ", 1)[-1]


def _given_names_compatible(a: str, b: str) -> bool:
    """Same person if the folded names are near-identical or one given name is a short form of the other."""
    if SequenceMatcher(None, a, b).ratio() >= PERSON_NAME_SIMILARITY:
        return True
    first_a, first_b = a.split(" ", 1)[0], b.split(" ", 1)[0]
    short, long = sorted((first_a, first_b), key=len)
    rest_a, rest_b = a.split(" ")[1:], b.split(" ")[1:]
    return len(short) >= MIN_SHORT_GIVEN_NAME and short in long and rest_a == rest_b


class AliasTable:
    def __init__(self, path: Path | None, english_place_names: bool = False) -> None:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path) if path else ":memory:", check_same_thread=False)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS variants (label TEXT NOT NULL, name TEXT NOT NULL, "
            "cluster INTEGER NOT NULL, mentions INTEGER NOT NULL, PRIMARY KEY (label, name))"
        )
        self._variants: dict[tuple[str, str], Variant] = {}
        self._by_key: dict[tuple[str, str], int] = {}
        self._by_surname: dict[str, set[int]] = {}
        self._members: dict[int, list[Variant]] = {}
        for label, name, cluster, mentions in self._db.execute(
            "SELECT label, name, cluster, mentions FROM variants"
        ):
            self._remember(Variant(name, label, cluster, mentions))
        self._pinned: dict[int, str] = {}
        for seed_file in (PLACES_FILE, SEED_FILE) if english_place_names else (SEED_FILE,):
            self._load_seeds(seed_file)

    def _load_seeds(self, seed_file: str) -> None:
        """Pin the seed file's canonical names onto their clusters (joining any already learnt)."""
        seeds = yaml.safe_load(files("enrich").joinpath(seed_file).read_text(encoding="utf-8")) or {}
        for label, groups in seeds.items():
            for canonical, variants in groups.items():
                names = [str(canonical), *(str(v) for v in variants)]
                cluster = next(
                    (c for n in names if (c := self._by_key.get((label, fold(n)))) is not None),
                    1 + max(self._members, default=0),
                )
                for name in names:
                    if (label, name) not in self._variants:
                        self._remember(Variant(name, label, cluster, 0))
                self._pinned[cluster] = str(canonical)

    def close(self) -> None:
        self._db.close()

    def _remember(self, variant: Variant) -> None:
        self._variants[(variant.label, variant.name)] = variant
        key = fold(variant.name)
        self._by_key.setdefault((variant.label, key), variant.cluster)
        if variant.label == "person" and " " in key:
            self._by_surname.setdefault(_surname(key), set()).add(variant.cluster)
        self._members.setdefault(variant.cluster, []).append(variant)

    def canonical(self, label: EntityLabel, name: str) -> str:
        """The canonical name of a known variant (the name itself when unknown)."""
        variant = self._variants.get((label, name))
        if variant is None:
            return name
        pinned = self._pinned.get(variant.cluster)
        if pinned is not None:
            return pinned
        best = max(self._members[variant.cluster], key=lambda v: (v.mentions, len(v.name)))
        return best.name

    def _find_cluster(self, label: EntityLabel, name: str, language: str) -> int | None:
        key = fold(name)
        found = self._lookup(label, key)
        if (
            found is None
            and language == "de"
            and key.endswith("s")
            and not key.endswith("ss")
            and len(key) > 3
        ):
            found = self._lookup(label, key[:-1])  # German genitive: "Mexikos", "Bidens"
        return found

    def _lookup(self, label: EntityLabel, key: str) -> int | None:
        found = self._by_key.get((label, key))
        if found is not None:
            return found
        if label == "person":
            return self._find_person(key)
        if len(key) >= MIN_FUZZY_LENGTH:
            for (other_label, other_key), cluster in self._by_key.items():
                if (
                    other_label == label
                    and other_key[:1] == key[:1]
                    and SequenceMatcher(None, key, other_key).ratio() >= OTHER_NAME_SIMILARITY
                ):
                    return cluster
        return None

    def _find_person(self, key: str) -> int | None:
        clusters = self._by_surname.get(_surname(key), set())
        if " " not in key:
            return next(iter(clusters)) if len(clusters) == 1 else None
        for cluster in sorted(clusters):
            if any(
                " " in fold(v.name) and _given_names_compatible(key, fold(v.name))
                for v in self._members[cluster]
            ):
                return cluster
        # a misspelt surname with the same given names: "Olaf Scholtz"
        given, surname = key.rsplit(" ", 1)
        for other, other_clusters in self._by_surname.items():
            if other[:1] != surname[:1] or SequenceMatcher(None, surname, other).ratio() < SURNAME_SIMILARITY:
                continue
            for cluster in sorted(other_clusters):
                if any(fold(v.name).rsplit(" ", 1)[0] == given for v in self._members[cluster]):
                    return cluster
        return None

    def observe(self, entities: Sequence[Entity], language: str) -> None:
        """Count an article's entities in: full names first (surnames find them), stems before genitives."""
        ordered = sorted(entities, key=lambda e: (-len(e.name.split()), len(e.name)))
        with self._lock, self._db:
            for entity in ordered:
                variant = self._variants.get((entity.label, entity.name))
                if variant is None:
                    cluster = self._find_cluster(entity.label, entity.name, language)
                    if cluster is None:
                        cluster = 1 + max(self._members, default=0)
                    variant = Variant(entity.name, entity.label, cluster, 0)
                    self._remember(variant)
                variant.mentions += entity.mentions
                self._db.execute(
                    "INSERT INTO variants VALUES (?, ?, ?, ?) ON CONFLICT (label, name) DO UPDATE SET "
                    "mentions = excluded.mentions",
                    (variant.label, variant.name, variant.cluster, variant.mentions),
                )

    def normalise(self, entities: Sequence[Entity], language: str) -> tuple[Entity, ...]:
        """Record the article's entities, then rename each to its canonical name and merge duplicates."""
        self.observe(entities, language)
        merged: dict[tuple[str, EntityLabel], Entity] = {}
        for entity in entities:
            name = self.canonical(entity.label, entity.name)
            key = (name, entity.label)
            previous = merged.get(key)
            if previous is None:
                merged[key] = entity.model_copy(
                    update={
                        "name": name,
                        "surface_forms": tuple(sorted({*entity.surface_forms, entity.name})),
                    }
                )
                continue
            merged[key] = previous.model_copy(
                update={
                    "mentions": previous.mentions + entity.mentions,
                    "first_offset": min(previous.first_offset, entity.first_offset),
                    "in_title": previous.in_title or entity.in_title,
                    "surface_forms": tuple(
                        sorted({*previous.surface_forms, *entity.surface_forms, entity.name})
                    ),
                }
            )
        result = list(merged.values())
        result.sort(key=lambda e: (-int(e.in_title), -e.mentions, e.first_offset))
        return tuple(result)
