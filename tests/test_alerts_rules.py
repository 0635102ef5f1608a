"""Rules, the query language and the in-stream matcher, without servers."""

from __future__ import annotations

from datetime import UTC, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from alerts.channels import render
from alerts.delivery import alert_id, digest_due, quiet_until, story_key
from alerts.matcher import RuleMatcher
from alerts.query import And, Keyword, Not, Or, QuerySyntaxError, Text, parse
from alerts.rules import Rule, RuleSet
from newsflow.schemas import AlertEvent, AlertItem
from tests.test_alerts_support import enriched

pytestmark = pytest.mark.alerts

HOOK = "http://127.0.0.1:9/hook"


def rule(rule_id: str = "r", **fields: object) -> Rule:
    return Rule.model_validate({"id": rule_id, "channels": [HOOK], **fields})


def matches(r: Rule, article: object) -> bool:
    return bool(RuleMatcher([r]).match(article))  # type: ignore[arg-type]


def test_query_grammar_precedence_negation_phrases_and_fields():
    node = parse('migration AND (title:"EU summit" OR entity:Blinken) -sport')
    assert node == And(
        (
            Text("migration", ("migration",)),
            Or((Text("EU summit", ("eu", "summit"), "title"), Keyword("entity", "Blinken"))),
            Not(Text("sport", ("sport",))),
        )
    )
    assert parse("a b OR c") == Or((And((Text("a", ("a",)), Text("b", ("b",)))), Text("c", ("c",))))
    assert parse("NOT lang:de") == Not(Keyword("lang", "de"))
    for bad in ("", "(a OR b", "a OR", "nofield:x", "title:", '"..."'):
        with pytest.raises(QuerySyntaxError):
            parse(bad)


def test_phrases_need_adjacent_words_in_one_field():
    r = rule(query='"border control"')
    assert matches(r, enriched(1, "New border control rules"))
    assert not matches(r, enriched(2, "Control at the border"))
    assert not matches(r, enriched(3, "More border", "control everywhere"))  # title and body are separate
    assert matches(rule(query='body:"border control"'), enriched(4, "x", "The Border Control agency"))
    assert not matches(rule(query="title:agency"), enriched(5, "x", "The Border Control agency"))


def test_an_entity_rule_matches_surface_variants_of_one_person():
    full = rule(entities=("Antony Blinken",))
    short = rule(entities=("blinken",))
    variants = [
        enriched(1, "a", entities=(("Antony Blinken", "person", ("Antony Blinken", "Blinken")),)),
        enriched(2, "b", entities=(("Blinken", "person", ("Blinken",)),)),
        enriched(3, "c", entities=(("ANTONY BLINKEN", "person", ()),)),
        enriched(4, "d", entities=(("Antony J. Blinken", "person", ("Antony Blinken", "Blinken")),)),
    ]
    for article in variants:
        assert matches(full, article), article.entities
        assert matches(short, article), article.entities
    other = enriched(5, "e", entities=(("Tony Blair", "person", ("Blair",)), ("Blinken Corp", "org", ())))
    assert not matches(full, other)
    assert not matches(short, other)  # the surname rule is for persons only


def test_topics_any_all_min_score_language_and_source():
    article = enriched(
        1, "x", topics=(("migration", 0.8), ("politics", 0.3)), language="de", source="stern.de"
    )
    assert matches(rule(topics_any=("migration", "sport")), article)
    assert not matches(rule(topics_all=("migration", "sport")), article)
    assert matches(rule(topics_all=("migration", "politics")), article)
    assert not matches(rule(topics_all=("migration", "politics"), min_topic_score=0.5), article)
    assert matches(rule(topics_any=("migration", "politics"), min_topic_score=0.5), article)
    assert matches(rule(topics_any=("migration",), languages=("DE",), sources=("Stern.de",)), article)
    assert not matches(rule(topics_any=("migration",), languages=("en",)), article)
    assert not matches(rule(topics_any=("migration",), sources=("spiegel.de",)), article)


def test_the_index_evaluates_only_candidate_rules():
    rules = [rule(f"r{i}", query=f"word{i} OR other{i}") for i in range(2000)]
    rules += [rule("mig", topics_any=("migration",)), rule("neg", query="NOT nothing")]
    matcher = RuleMatcher(rules)
    found = matcher.match(enriched(1, "word7 and word1999", topics=(("migration", 0.9),)))
    assert sorted(r.id for r, _ in found) == ["mig", "neg", "r1999", "r7"]
    assert matcher.evaluated == 4  # not 2002: rules are found through their terms
    terms = dict((r.id, t) for r, t in found)
    assert terms["r7"] == ("word7",)
    assert terms["mig"] == ("topic:migration",)


def test_rules_file_round_trip_channel_shorthands_and_validation(tmp_path: Path):
    path = tmp_path / "rules.yaml"
    path.write_text(
        """
rules:
  - id: eu
    query: EU
    channels: [https://hooks.example.org/a, "slack:https://hooks.example.org/s", "mailto:a@x.org,b@x.org",
               kafka, "kafka:my-topic"]
    throttle: {max_alerts: 2, window: 10m}
    digest: daily
    quiet_hours: {start: "22:00", end: "07:00"}
""",
        encoding="utf-8",
    )
    rules = RuleSet.load(path)
    eu = rules.rules[0]
    assert [c.type for c in eu.channels] == ["webhook", "slack", "email", "kafka", "kafka"]
    assert eu.channels[2].to == ("a@x.org", "b@x.org")
    assert eu.channels[4].topic == "my-topic"
    assert eu.throttle is not None and eu.throttle.window == 600
    rules.with_rule(rule("b", entities=("X",))).save(path)
    assert [r.id for r in RuleSet.load(path).rules] == ["eu", "b"]
    assert RuleSet.load(path).rules[0] == eu
    for bad in (
        {"id": "x", "channels": [HOOK]},  # no condition: would match everything
        {"id": "x", "query": "a OR", "channels": [HOOK]},
        {"id": "x", "query": "a", "channels": []},
        {"id": "x", "query": "a", "channels": ["ftp://x"]},
        {"id": "x", "query": "a", "channels": [HOOK], "template": {"text": "{nope}"}},
        {"id": "x", "query": "a", "channels": [HOOK], "timezone": "Mars/Olympus"},
    ):
        with pytest.raises(ValidationError):
            Rule.model_validate(bad)


def test_story_ids_and_schedules():
    article = enriched(1, "x", story="s-1")
    assert story_key(article) == "s-1"
    assert story_key(enriched(2, "y")).startswith("article:")
    assert alert_id("r", "s-1") == alert_id("r", "s-1") != alert_id("r2", "s-1")
    berlin = ZoneInfo("Europe/Berlin")
    r = rule(quiet_hours={"start": time(22), "end": time(7)}, query="x", digest="daily")
    at_23 = datetime(2026, 11, 27, 22, 30, tzinfo=UTC)  # 23:30 in Berlin
    assert quiet_until(r, at_23, berlin) == datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
    assert quiet_until(r, datetime(2026, 11, 27, 12, 0, tzinfo=UTC), berlin) is None
    assert digest_due(r, at_23, berlin) == datetime(2026, 11, 28, 7, 0, tzinfo=UTC)  # 08:00 Berlin
    hourly = rule(query="x", digest="hourly")
    assert digest_due(hourly, at_23, berlin) == datetime(2026, 11, 27, 23, 0, tzinfo=UTC)


def test_templates_carry_title_source_time_terms_and_link():
    r = rule(query="x", name="Migration", template={"subject": "{rule} | {source}"})
    item = AlertItem(
        article_id="a",
        story_id="s",
        title="Border news",
        url="https://example.org/1",
        source="example.org",
        published_at=datetime(2026, 11, 27, 9, 5, tzinfo=UTC),
        matched_terms=("migration", "topic:migration"),
    )
    event = AlertEvent(
        alert_id="id",
        rule_id="r",
        rule_name="Migration",
        mode="single",
        items=(item,),
        fired_at=datetime(2026, 11, 27, 9, 6, tzinfo=UTC),
    )
    rendered = render(r, event)
    assert rendered.subject == "Migration | example.org"
    assert rendered.text == (
        "Border news\nexample.org · 2026-11-27T09:05+00:00\nmatched: migration, topic:migration\n"
        "https://example.org/1"
    )
    digest = render(r, event.model_copy(update={"mode": "digest", "items": (item, item)}))
    assert digest.subject == "[newsflow] Migration: digest of 2 stories"
    assert digest.text.count("https://example.org/1") == 2


def test_the_rule_book_reloads_edits_and_keeps_the_last_good_rules(tmp_path: Path):
    from alerts.stage import RuleBook

    path = tmp_path / "rules.yaml"
    RuleSet(rules=(rule("a", query="x"),)).save(path)
    book = RuleBook(path, check_every_s=0)
    RuleSet(rules=(rule("a", query="x"), rule("b", query="y"))).save(path)
    book.refresh()
    assert sorted(book.rules()) == ["a", "b"]
    path.write_text("rules: [{id: broken}]\n", encoding="utf-8")
    book.refresh()
    assert sorted(book.rules()) == ["a", "b"]
    assert [r.id for r, _ in book.matcher.match(enriched(1, "y"))] == ["b"]
    with pytest.raises(ValidationError):
        RuleBook(path)
