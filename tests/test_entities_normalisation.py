"""Entity normalisation: in-article short forms and labels, the persistent cross-article alias table."""

from __future__ import annotations

from pathlib import Path

import pytest

from enrich.aliases import AliasTable
from enrich.entities import Mention, aggregate
from newsflow.schemas import Entity, EntityLabel


def entity(name: str, label: EntityLabel = "person", mentions: int = 1, offset: int = 100) -> Entity:
    return Entity(name=name, label=label, mentions=mentions, first_offset=offset, in_title=False)


def names(entities: tuple[Entity, ...]) -> dict[str, int]:
    return {e.name: e.mentions for e in entities}


def test_multi_word_short_forms_and_mislabelled_mentions_join_the_person():
    found = [
        Mention("Andrés Manuel López Obrador", "person", 300),
        Mention("Manuel López Obrador", "person", 500),
        Mention("López Obrador", "org", 40),
        Mention("Alejandro Mayorkas", "person", 60),
        Mention("Alejandro Mayorkas", "org", 700),
        Mention("Ford", "org", 800),
        Mention("Harrison Ford", "person", 900),
    ]
    entities = {(e.name, e.label): e for e in aggregate(found, title_length=10)}
    obrador = entities[("Andrés Manuel López Obrador", "person")]
    assert obrador.mentions == 3
    assert obrador.first_offset == 40
    assert entities[("Alejandro Mayorkas", "person")].mentions == 2
    # a single word labelled as an organisation stays one: "Ford" may be the carmaker
    assert ("Ford", "org") in entities


def test_misspelt_and_short_given_names_merge_into_the_most_mentioned_variant():
    table = AliasTable(None)
    first = table.normalise([entity("Antony Blinken", mentions=3), entity("Tony Blinken")], "en")
    assert names(first) == {"Antony Blinken": 4}
    assert first[0].surface_forms == ("Antony Blinken", "Tony Blinken")
    table.normalise([entity("Andrés Manuel López Obrador", mentions=2)], "en")
    second = table.normalise([entity("Andreas Manuel López Obrador")], "en")
    assert names(second) == {"Andrés Manuel López Obrador": 1}


def test_different_people_with_one_surname_stay_apart_and_a_bare_surname_needs_one_owner():
    table = AliasTable(None)
    table.normalise([entity("Joe Biden", mentions=5)], "en")
    assert names(table.normalise([entity("Jill Biden")], "en")) == {"Jill Biden": 1}
    # two people called Biden are known now: a bare "Biden" is not guessed
    assert names(table.normalise([entity("Biden")], "en")) == {"Biden": 1}
    table.normalise([entity("Friedrich Merz", mentions=2)], "de")
    assert names(table.normalise([entity("Merz")], "de")) == {"Friedrich Merz": 1}


def test_german_genitives_join_the_stem_only_in_german():
    table = AliasTable(None)
    merged = table.normalise([entity("Mexikos", "location", offset=5), entity("Mexiko", "location", 2)], "de")
    assert names(merged) == {"Mexiko": 3}
    assert merged[0].first_offset == 5
    table.normalise([entity("Wale", "location")], "en")
    assert names(table.normalise([entity("Wales", "location")], "en")) == {"Wales": 1}


def test_seeded_abbreviations_share_one_canonical_name():
    table = AliasTable(None)
    merged = table.normalise([entity("US", "location", 12), entity("USA", "location", 5)], "en")
    assert names(merged) == {"United States": 17}
    assert names(table.normalise([entity("EZB", "org")], "de")) == {"European Central Bank": 1}


def test_the_alias_table_persists_across_restarts(tmp_path: Path):
    path = tmp_path / "aliases.sqlite"
    table = AliasTable(path)
    table.normalise([entity("Olaf Scholz", mentions=4)], "de")
    table.close()
    reopened = AliasTable(path)
    assert names(reopened.normalise([entity("Olaf Scholtz")], "de")) == {"Olaf Scholz": 1}
    reopened.close()
    # counts persist too: once the variant is mentioned more often (1 + 9 > 4), it becomes the name
    assert names(AliasTable(path).normalise([entity("Olaf Scholtz", mentions=9)], "de")) == {
        "Olaf Scholtz": 9
    }


def test_english_place_names_join_german_ones_across_languages_when_asked():
    table = AliasTable(None, english_place_names=True)
    german = table.normalise(
        [entity("Mexikos", "location"), entity("Wien", "location"), entity("Türkei", "location")], "de"
    )
    assert names(german) == {"Mexico": 1, "Vienna": 1, "Turkey": 1}
    assert names(table.normalise([entity("USA", "location"), entity("Köln", "location")], "de")) == {
        "United States": 1,
        "Cologne": 1,
    }
    assert {"Mexikos"} <= set(next(e for e in german if e.name == "Mexico").surface_forms)
    # by default each article keeps its language's names
    default = AliasTable(None).normalise([entity("Wien", "location"), entity("München", "location")], "de")
    assert names(default) == {"Wien": 1, "München": 1}


def test_the_generated_place_table_is_up_to_date():
    pytest.importorskip("babel")
    from enrich.places import main as places

    assert places(["--check"]) == 0
