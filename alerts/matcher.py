"""Matching thousands of rules per article without looping over them.

Every rule is indexed under a few *anchor keys*: terms one of which any matching article must
contain (one topic of ``topics_any``, one entity's surname, one word of a required query term, …).
An article yields its own keys (its words, topics, entity names and surnames), and only the rules
found under those keys are evaluated exactly. The same rule compiles to an Elasticsearch query
(``rule_query``) with the same meaning, for backtests.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from alerts.query import (
    ENTITY_FIELDS,
    TEXT_FIELDS,
    And,
    Keyword,
    Node,
    Or,
    Text,
    analyze,
    entity_es,
    norm_name,
    parse,
    to_es,
)
from alerts.rules import Rule
from newsflow.schemas import EnrichedArticle

_ALWAYS = "*"  # rules without any anchor (e.g. only NOT terms); evaluated for every article


def _surname(name: str) -> str:
    return name.rsplit(" ", 1)[-1]


@dataclass
class ArticleView:
    """An enriched article prepared once for evaluating many rules."""

    article: EnrichedArticle
    positions: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    words: set[str] = field(default_factory=set)
    topics: dict[str, float] = field(default_factory=dict)
    entities: list[tuple[str, str, frozenset[str]]] = field(default_factory=list)
    source: str = ""
    language: str = ""

    @classmethod
    def of(cls, enriched: EnrichedArticle) -> ArticleView:
        article = enriched.article
        view = cls(enriched, source=article.source_domain.lower(), language=enriched.language.lower())
        for name, text in (
            ("title", article.title),
            ("description", article.description),
            ("body", article.body),
        ):
            index: dict[str, list[int]] = defaultdict(list)
            for position, token in enumerate(analyze(text or "")):
                index[token].append(position)
            view.positions[name] = index
            view.words.update(index)
        view.topics = {topic.name: topic.score for topic in enriched.topics}
        for entity in enriched.entities:
            forms = frozenset({norm_name(entity.name), *(norm_name(s) for s in entity.surface_forms)})
            view.entities.append((entity.label, norm_name(entity.name), forms))
        return view

    def keys(self) -> set[str]:
        keys = {f"w:{word}" for word in self.words}
        keys.update(f"t:{topic}" for topic in self.topics)
        for _, _, forms in self.entities:
            keys.update(f"e:{_surname(form)}" for form in forms)
        keys.add(f"l:{self.language}")
        keys.add(f"s:{self.source}")
        return keys

    def has_text(self, node: Text) -> bool:
        fields = (node.field,) if node.field else TEXT_FIELDS
        first, rest = node.tokens[0], node.tokens[1:]
        for name in fields:
            index = self.positions[name]
            for start in index.get(first, ()):
                if all(start + i + 1 in index.get(token, ()) for i, token in enumerate(rest)):
                    return True
        return False

    def has_entity(self, name: str, label: str | None = None) -> bool:
        """Canonical name or surface form, any case; for persons "Blinken" ~ "Antony Blinken"."""
        wanted = norm_name(name)
        single = " " not in wanted
        for entity_label, canonical, forms in self.entities:
            if label and entity_label != label:
                continue
            if wanted in forms:
                return True
            if entity_label == "person" and (
                (single and " " in canonical and _surname(canonical) == wanted)
                or (" " not in canonical and not single and _surname(wanted) == canonical)
            ):
                return True
        return False


def evaluate(node: Node, view: ArticleView, matched: list[str]) -> bool:
    """True if the article satisfies the query; positive terms that matched are appended to ``matched``."""
    if isinstance(node, Text):
        hit = view.has_text(node)
        if hit:
            matched.append(f"{node.field}:{node.raw}" if node.field else node.raw)
        return hit
    if isinstance(node, Keyword):
        if node.field == "topic":
            hit = node.value in view.topics
        elif node.field == "source":
            hit = view.source == node.value.lower()
        elif node.field == "lang":
            hit = view.language == node.value.lower()
        else:
            hit = view.has_entity(node.value, None if node.field == "entity" else node.field)
        if hit:
            matched.append(f"{node.field}:{node.value}")
        return hit
    if isinstance(node, And):
        return all(evaluate(child, view, matched) for child in node.children)
    if isinstance(node, Or):
        results = [evaluate(child, view, matched) for child in node.children]  # all: collect every term
        return any(results)
    return not evaluate(node.child, view, [])


def _anchors(node: Node) -> set[str] | None:  # noqa: PLR0911 - one answer per kind of query node
    """Keys one of which every article matching ``node`` has; None if there is no such set."""
    if isinstance(node, Text):
        return {f"w:{node.tokens[0]}"}
    if isinstance(node, Keyword):
        if node.field == "topic":
            return {f"t:{node.value}"}
        if node.field == "source":
            return {f"s:{node.value.lower()}"}
        if node.field == "lang":
            return {f"l:{node.value.lower()}"}
        return {f"e:{_surname(norm_name(node.value))}"}
    if isinstance(node, And):
        options = [a for a in (_anchors(child) for child in node.children) if a is not None]
        return min(options, key=len) if options else None
    if isinstance(node, Or):
        union: set[str] = set()
        for child in node.children:
            anchors = _anchors(child)
            if anchors is None:
                return None
            union |= anchors
        return union
    return None


@dataclass(frozen=True)
class CompiledRule:
    rule: Rule
    query: Node | None

    @classmethod
    def of(cls, rule: Rule) -> CompiledRule:
        return cls(rule, parse(rule.query) if rule.query else None)

    def anchors(self) -> set[str]:
        rule = self.rule
        options: list[set[str]] = []
        if rule.entities:
            options.append({f"e:{_surname(norm_name(name))}" for name in rule.entities})
        if self.query is not None and (anchors := _anchors(self.query)) is not None:
            options.append(anchors)
        if rule.topics_any:
            options.append({f"t:{topic}" for topic in rule.topics_any})
        if rule.topics_all:
            options.append({f"t:{rule.topics_all[0]}"})
        return min(options, key=len) if options else {_ALWAYS}

    def match(self, view: ArticleView) -> tuple[str, ...] | None:  # noqa: PLR0911 - each condition can veto
        """The matched terms (for the alert's text), or None if the rule does not match."""
        rule = self.rule
        matched: list[str] = []
        if rule.languages and view.language not in {lang.lower() for lang in rule.languages}:
            return None
        if rule.sources and view.source not in {source.lower() for source in rule.sources}:
            return None

        def scored(topic: str) -> bool:
            return view.topics.get(topic, -1.0) >= rule.min_topic_score

        if rule.topics_all:
            if not all(scored(topic) for topic in rule.topics_all):
                return None
            matched.extend(f"topic:{topic}" for topic in rule.topics_all)
        if rule.topics_any:
            hits = [topic for topic in rule.topics_any if scored(topic)]
            if not hits:
                return None
            matched.extend(f"topic:{topic}" for topic in hits)
        if rule.entities:
            hits = [name for name in rule.entities if view.has_entity(name)]
            if not hits:
                return None
            matched.extend(f"entity:{name}" for name in hits)
        if self.query is not None and not evaluate(self.query, view, matched):
            return None
        return tuple(dict.fromkeys(matched))


class RuleMatcher:
    """An inverted index of rule anchors; ``evaluated`` counts exact evaluations (for tests and bench)."""

    def __init__(self, rules: list[Rule] | tuple[Rule, ...]) -> None:
        self.rules = {rule.id: CompiledRule.of(rule) for rule in rules if rule.enabled}
        self.index: dict[str, list[CompiledRule]] = defaultdict(list)
        for compiled in self.rules.values():
            for key in compiled.anchors():
                self.index[key].append(compiled)
        self.evaluated = 0

    def match(self, enriched: EnrichedArticle) -> list[tuple[Rule, tuple[str, ...]]]:
        view = ArticleView.of(enriched)
        keys = view.keys()
        keys.add(_ALWAYS)
        candidates: dict[str, CompiledRule] = {}
        for key in keys:
            for compiled in self.index.get(key, ()):
                candidates[compiled.rule.id] = compiled
        results = []
        for rule_id in sorted(candidates):
            self.evaluated += 1
            terms = candidates[rule_id].match(view)
            if terms is not None:
                results.append((candidates[rule_id].rule, terms))
        return results


def rule_query(rule: Rule, since: str | None = None) -> dict[str, Any]:
    """The rule as an Elasticsearch query over the article alias (mapping articles.v1)."""

    def topic(name: str) -> dict[str, Any]:
        if rule.min_topic_score > 0:
            return {"range": {f"topic_scores.{name}": {"gte": rule.min_topic_score}}}
        return {"term": {"topics": name}}

    filters: list[dict[str, Any]] = []
    if rule.languages:
        filters.append({"terms": {"language": [lang.lower() for lang in rule.languages]}})
    if rule.sources:
        filters.append(
            {
                "bool": {
                    "should": [
                        {"term": {"source.domain": {"value": s, "case_insensitive": True}}}
                        for s in rule.sources
                    ],
                    "minimum_should_match": 1,
                }
            }
        )
    filters.extend(topic(name) for name in rule.topics_all)
    if rule.topics_any:
        filters.append({"bool": {"should": [topic(t) for t in rule.topics_any], "minimum_should_match": 1}})
    if rule.entities:
        filters.append(
            {"bool": {"should": [entity_es(name) for name in rule.entities], "minimum_should_match": 1}}
        )
    if rule.query:
        filters.append(to_es(parse(rule.query)))
    if since:
        from index.search import date_math

        filters.append({"range": {"@timestamp": {"gte": date_math(since)}}})
    return {"bool": {"filter": filters}}


__all__ = ["ENTITY_FIELDS", "ArticleView", "CompiledRule", "RuleMatcher", "evaluate", "rule_query"]
