"""Topics: taxonomy, lexicon matching, scores with evidence, migration precision, the eval command."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from enrich.language import LanguageDetector
from enrich.topic_eval import evaluate, load_dataset, metrics
from enrich.topics import Document, Taxonomy, TaxonomyError, TopicClassifier, split_sentences

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def classifier() -> TopicClassifier:
    return TopicClassifier(Taxonomy.load())


def test_taxonomy_has_iptc_top_level_and_migration_with_bilingual_terms():
    taxonomy = Taxonomy.load()
    ids = taxonomy.ids
    assert len(set(ids)) == len(ids)
    for slug in ("politics", "economy", "migration", "sport", "crime", "health", "science", "technology"):
        assert slug in ids
    for topic in taxonomy.topics:
        assert re.fullmatch(r"[a-z][a-z-]*", topic.id)
        assert topic.lexicon.get("en") and topic.lexicon.get("de"), topic.id
        assert topic.prototypes


@pytest.mark.parametrize(
    ("label", "topic"),
    [
        ("business", "economy"),
        ("Wirtschaft", "economy"),
        ("tech", "technology"),
        ("entertainment", "culture"),
        ("Einwanderung", "migration"),
        ("SPORT", "sport"),
        ("Sci/Tech", "technology"),
        ("World", "politics"),
        ("politics", "politics"),
        ("astrology", None),
    ],
)
def test_labels_resolve_by_id_or_alias(label: str, topic: str | None):
    assert Taxonomy.load().resolve(label) == topic


def test_user_topics_extend_and_replace_builtin_ones(tmp_path: Path):
    user = tmp_path / "topics.yaml"
    user.write_text(
        "topics:\n"
        "  - id: energy\n    aliases: [Energie]\n    lexicon: {en: [pipeline*], de: [strompreis*]}\n"
        "    prototypes: [Gas pipelines and electricity prices.]\n"
        "  - id: sport\n    aliases: [Sport]\n    lexicon: {en: [chess], de: [schach]}\n"
        "    prototypes: [A chess tournament.]\n",
        encoding="utf-8",
    )
    taxonomy = Taxonomy.load(user)
    assert taxonomy.resolve("Energie") == "energy"
    sport = next(t for t in taxonomy.topics if t.id == "sport")
    assert sport.lexicon == {"en": ("chess",), "de": ("schach",)}
    bad = tmp_path / "bad.yaml"
    bad.write_text("topics:\n  - id: Not A Slug\n    lexicon: {en: [x]}\n    prototypes: [x]\n")
    with pytest.raises(TaxonomyError):
        Taxonomy.load(bad)


def test_lexicon_terms_match_prefixes_compounds_and_whole_words_only():
    taxonomy = Taxonomy.load()
    migration = next(t for t in taxonomy.topics if t.id == "migration")
    de = migration.patterns["de"]
    assert {m.group(0) for m in de.finditer("Kriegsflüchtlinge und Migranten in der Asylunterkunft")} == {
        "Kriegsflüchtlinge",
        "Migranten",
        "Asylunterkunft",
    }
    en = migration.patterns["en"]
    assert [m.group(0) for m in en.finditer("Immigration of refugees, not migraine")] == [
        "Immigration",
        "refugees",
    ]


def test_sentences_are_split_on_punctuation_and_lines():
    assert split_sentences('He said "yes." Then: no! Neue Zeile\nZweite Zeile') == [
        'He said "yes."',
        "Then: no!",
        "Neue Zeile",
        "Zweite Zeile",
    ]


def test_migration_articles_are_tagged_with_terms_and_sentences_as_evidence(classifier: TopicClassifier):
    examples = [e for e in load_dataset(DATA / "topics-migration.csv") if e.label == "migration"]
    detector = LanguageDetector(("de", "en"))
    docs = [Document(e.title, e.body, detector.detect(e.body).language) for e in examples]
    assert {d.language for d in docs} == {"de", "en"}
    for doc, topics in zip(docs, classifier.classify(docs), strict=True):
        migration = next((t for t in topics if t.name == "migration"), None)
        assert migration is not None, doc.title
        terms = migration.evidence[0]
        assert terms.startswith("terms: ")
        sentences = [e.removeprefix("sentence: ") for e in migration.evidence if e.startswith("sentence: ")]
        assert sentences
        assert all(s in doc.body for s in sentences)
        # every quoted sentence contains one of the listed terms
        listed = [t.split(" (")[0] for t in terms.removeprefix("terms: ").split(", ")]
        assert all(any(t in s.lower() for t in listed) for s in sentences)


def test_migration_precision_on_passing_mentions_in_both_languages(classifier: TopicClassifier):
    report = evaluate_tagging(classifier, DATA / "topics-migration.csv", "migration")
    assert report["passing_mentions_de"] >= 4 and report["passing_mentions_en"] >= 4
    assert report["precision"] >= 0.9
    assert report["recall"] >= 0.9


def evaluate_tagging(classifier: TopicClassifier, path: Path, topic: str) -> dict[str, float]:
    """Precision/recall of tagging ``topic`` (multi-label output) on a set labelled topic/other."""
    examples = load_dataset(path)
    detector = LanguageDetector(("de", "en"))
    docs = [Document(e.title, e.body, detector.detect(e.body).language) for e in examples]
    tagged = [any(t.name == topic for t in topics) for topics in classifier.classify(docs)]
    gold = [e.label == topic for e in examples]
    tp = sum(t and g for t, g in zip(tagged, gold, strict=True))
    return {
        "precision": tp / max(1, sum(tagged)),
        "recall": tp / max(1, sum(gold)),
        "passing_mentions_de": sum(not g and d.language == "de" for g, d in zip(gold, docs, strict=True)),
        "passing_mentions_en": sum(not g and d.language == "en" for g, d in zip(gold, docs, strict=True)),
    }


def test_metrics_accuracy_macro_f1_and_confusion():
    report = metrics(["a", "a", "b", "b"], ["a", "b", "b", "b"])
    assert report["accuracy"] == 0.75
    assert report["confusion"] == {"a": {"a": 1, "b": 1}, "b": {"b": 2}}
    assert report["per_label"]["a"] == {"precision": 1.0, "recall": 0.5, "f1": 0.6667, "support": 2}
    assert report["per_label"]["b"]["f1"] == 0.8
    assert report["macro_f1"] == round((0.6667 + 0.8) / 2, 4)


def _write_folder_dataset(root: Path) -> None:
    texts = {
        "Wirtschaft": [
            "Aktie bricht ein\nDer Konzern meldet einen Gewinneinbruch, die Aktie fällt an der Börse "
            "um zehn Prozent. Anleger sind enttäuscht vom Umsatz.",
            "Shares slump after profit warning\nThe company cut its profit forecast and its shares fell "
            "sharply on the stock market. Investors sold.",
        ],
        "Sport": [
            "Derbysieg in letzter Minute\nDie Mannschaft gewann das Derby mit einem Tor in der "
            "Nachspielzeit. Der Trainer lobte seine Spieler.",
            "United win the cup final\nThe striker scored twice as United won the cup final. The coach "
            "praised the team and the fans celebrated in the stadium.",
        ],
    }
    for label, items in texts.items():
        folder = root / label
        folder.mkdir(parents=True)
        for i, text in enumerate(items):
            (folder / f"{i}.txt").write_text(text, encoding="utf-8")


def test_eval_on_a_folder_dataset_maps_german_labels_by_alias(tmp_path: Path, classifier: TopicClassifier):
    _write_folder_dataset(tmp_path / "set")
    report = evaluate(tmp_path / "set", classifier)
    assert report["labels"] == {"Sport": "sport", "Wirtschaft": "economy"}
    assert report["n"] == 4
    assert report["accuracy"] == 1.0
    sample = evaluate(tmp_path / "set", classifier, limit=2)
    assert sample["n"] == 2
    assert set(sample["per_label"]) == {"Sport", "Wirtschaft"}  # the sample is spread over the labels


def test_eval_topics_command_on_a_csv_with_a_label_mapping(tmp_path: Path):
    csv_file = tmp_path / "set.csv"
    csv_file.write_text(
        "label;text\n"
        'money;"Bank raises interest rates\nThe central bank raised interest rates again as inflation stayed '
        'high; markets fell."\n'
        'games;"Cup final goes to extra time\nThe team won the match after extra time; '
        'the striker scored."\n',
        encoding="utf-8",
    )
    mapping = tmp_path / "labels.yaml"
    mapping.write_text("money: economy\ngames: sport\n", encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-m", "newsflow.cli", "eval", "topics", "--dataset", str(csv_file), "--labels",
         str(mapping), "--json"],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    report = json.loads(run.stdout)
    assert set(report) >= {"accuracy", "macro_f1", "per_label", "confusion"}
    assert report["labels"] == {"games": "sport", "money": "economy"}
    assert report["confusion"] == {"games": {"games": 1}, "money": {"money": 1}}


def test_eval_without_mapping_rejects_unknown_labels(tmp_path: Path, classifier: TopicClassifier):
    csv_file = tmp_path / "set.csv"
    csv_file.write_text("zodiac;Stars\nThe stars say so.\n", encoding="utf-8")
    with pytest.raises(ValueError, match="zodiac"):
        evaluate(csv_file, classifier)


def test_eval_rejects_labels_that_map_to_one_topic(tmp_path: Path, classifier: TopicClassifier):
    csv_file = tmp_path / "set.csv"
    csv_file.write_text('business;"A\nShares fell."\nWirtschaft;"B\nAktien fielen."\n', encoding="utf-8")
    with pytest.raises(ValueError, match="economy"):
        evaluate(csv_file, classifier)
