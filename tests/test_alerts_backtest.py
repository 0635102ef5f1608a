"""The stream matcher and the rule's Elasticsearch query agree on a shared corpus; ``alerts test``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from alerts.matcher import RuleMatcher, rule_query
from alerts.rules import Rule, RuleSet
from index.setup import setup
from index.stage import ElasticsearchBulkSink, IndexStage
from newsflow.cli import main
from newsflow.settings import ElasticsearchSettings
from tests.test_alerts_support import enriched

pytestmark = [pytest.mark.alerts, pytest.mark.elasticsearch]

BLINKEN = ("Antony Blinken", "person", ("Antony Blinken", "Blinken"))
CORPUS = [
    enriched(
        1,
        "Migration summit in Brussels",
        "Ministers discussed migration and border control.",
        source="bbc.co.uk",
        story="s1",
        topics=(("migration", 0.9), ("politics", 0.6)),
        entities=(BLINKEN,),
    ),
    enriched(
        2,
        "EU ministers meet on migration",
        "Border control was the main topic in Brussels.",
        source="dw.com",
        story="s1",
        topics=(("migration", 0.7),),
    ),
    enriched(
        3,
        "Migrationsgipfel in Brüssel",
        "Die Minister sprachen über Migration und Grenzkontrollen.",
        source="stern.de",
        story="s1",
        language="de",
        topics=(("migration", 0.8),),
    ),
    enriched(
        4,
        "Blinken visits Kyiv",
        "The secretary of state met officials.",
        source="dw.com",
        story="s2",
        entities=(("Blinken", "person", ("Blinken",)),),
        topics=(("politics", 0.4),),
    ),
    enriched(
        5,
        "Talks in Washington",
        "ANTONY BLINKEN said the talks were useful.",
        source="bbc.co.uk",
        story="s3",
        entities=(("ANTONY BLINKEN", "person", ()),),
        topics=(("politics", 0.95),),
    ),
    enriched(
        6,
        "Football: derby ends in a draw",
        "No goals, no border control, just football.",
        source="kicker.de",
        story="s4",
        topics=(("sport", 0.99),),
    ),
    enriched(
        7,
        "Control at the border",
        "A new agency starts its work.",
        source="spiegel.de",
        story="s5",
        language="de",
        topics=(("migration", 0.3),),
        description="Border control, explained",
    ),
    enriched(
        8,
        "Blinken Corp reports profits",
        "Markets react.",
        source="ft.com",
        story="s6",
        entities=(("Blinken Corp", "org", ()),),
        topics=(("economy", 0.8),),
    ),
    enriched(
        9,
        "Asylum numbers fall",
        "Fewer people applied for asylum in the U.S. this year.",
        source="bbc.co.uk",
        story=None,
        topics=(("migration", 0.6), ("politics", 0.5)),
    ),
    enriched(
        10,
        "Tony Blair on Europe",
        "Blair's speech on the EU.",
        source="theguardian.com",
        story="s7",
        entities=(("Tony Blair", "person", ("Blair",)),),
        topics=(("politics", 0.7),),
    ),
    enriched(
        11,
        "Grenzgespräche mit Mexiko",
        "Die Regierung Mexikos verhandelt.",
        source="stern.de",
        story="s8",
        language="de",
        entities=(("Mexico", "location", ("Mexikos", "Mexiko")),),  # English place names switched on
        topics=(("politics", 0.7),),
    ),
]
RULE_FIELDS: list[tuple[str, dict[str, Any]]] = [
    ("words", {"query": "migration"}),
    ("either", {"query": "migration OR asylum"}),
    ("phrase", {"query": '"border control"'}),
    ("title-phrase", {"query": 'title:"border"'}),
    ("description", {"query": "description:explained"}),
    ("boolean", {"query": "(migration OR asylum) AND NOT sport -Brussels"}),
    ("dotted", {"query": "u.s"}),
    ("possessive", {"query": "blair's"}),
    ("entity-full", {"entities": ["Antony Blinken"]}),
    ("entity-short", {"entities": ["blinken"]}),
    ("entity-field", {"query": 'person:Blinken OR org:"Blinken Corp"'}),
    ("entity-surface", {"entities": ["Mexikos"]}),  # a surface form only: indexed since mapping v3
    ("entity-surface-field", {"query": "location:mexiko"}),
    ("topics-any", {"topics_any": ["migration", "economy"]}),
    ("topics-all", {"topics_all": ["migration", "politics"]}),
    ("min-score", {"topics_any": ["migration", "politics"], "min_topic_score": 0.65}),
    ("lang-source", {"query": "border OR Grenzkontrollen", "languages": ["de"], "sources": ["STERN.de"]}),
    ("query-keywords", {"query": "topic:politics lang:en -source:dw.com"}),
    ("not-only", {"query": "NOT migration AND NOT politics"}),
]
RULES = [Rule.model_validate({"id": i, "channels": ["kafka"], **fields}) for i, fields in RULE_FIELDS]


def test_stream_matcher_and_elasticsearch_query_agree(
    es_client: Elasticsearch, es_settings: ElasticsearchSettings
):
    setup(es_client, es_settings)
    stage = IndexStage()
    assert (
        ElasticsearchBulkSink(es_client, es_settings.alias, refresh=True).write(
            [stage.process(a) for a in CORPUS]
        )
        == []
    )
    matcher = RuleMatcher(RULES)
    stream: dict[str, set[str]] = {r.id: set() for r in RULES}
    for article in CORPUS:
        for r, _ in matcher.match(article):
            stream[r.id].add(article.article.article_id)
    for r in RULES:
        response = es_client.search(index=es_settings.alias, query=rule_query(r), size=100, source=False)
        found = {hit["_id"] for hit in response["hits"]["hits"]}
        assert found == stream[r.id], r.id
        assert 0 < len(found) < len(CORPUS), r.id  # every rule is a real test: some match, not all
    assert len(stream["entity-full"]) == 3  # articles 1, 4, 5: full name, surname only, upper case
    assert stream["entity-surface"] == stream["entity-surface-field"] == {CORPUS[-1].article.article_id}


def test_alerts_test_backtests_a_rule_with_one_alert_per_story(
    es_client: Elasticsearch, es_settings: ElasticsearchSettings, tmp_path, monkeypatch, capsys
):
    setup(es_client, es_settings)
    stage = IndexStage()
    ElasticsearchBulkSink(es_client, es_settings.alias, refresh=True).write(
        [stage.process(a) for a in CORPUS]
    )
    rules = tmp_path / "rules.yaml"
    RuleSet(rules=tuple(RULES)).save(rules)
    monkeypatch.setenv("NEWSFLOW_ALERT_RULES", str(rules))
    monkeypatch.setenv("NEWSFLOW_ELASTICSEARCH_ALIAS", es_settings.alias)
    assert main(["alerts", "test", "either", "--since", "3650d", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # Articles 1, 2, 3 ("Migration" in German too) of story s1, and 9 ("asylum") without a story.
    assert report["articles"] == 4
    assert report["alerts"] == 2
    assert {hit["story_id"] for hit in report["hits"]} == {"s1", None}
    assert main(["alerts", "test", "nope", "--json"]) == 2
