"""The rule query language, evaluated on an article in the stream and compiled to Elasticsearch.

Grammar: terms and ``"phrases"``, ``AND`` / ``OR`` / ``NOT`` (or ``-term``), parentheses, implicit
AND between neighbours, and field filters ``title: body: description: topic: entity: person: org:
location: misc: source: lang:``. Both evaluators share one meaning, so a backtest in Elasticsearch
finds what the stream would have alerted on (a test checks this on a shared corpus).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from index.stage import ENTITY_GROUPS
from newsflow.schemas import ENTITY_LABELS

# Approximates Elasticsearch's ``standard`` analyzer (Unicode word segmentation + lowercase), which
# is what the article mapping uses for title/description/body on every cluster.
_WORD = re.compile(r"\w+(?:[.'\u2019]\w+)*")
TEXT_FIELDS: tuple[str, ...] = ("title", "description", "body")
ENTITY_FIELDS: tuple[str, ...] = ENTITY_LABELS
KEYWORD_FIELDS = frozenset({"topic", "entity", "source", "lang", "language", *ENTITY_FIELDS})


class QuerySyntaxError(ValueError):
    """A rule's query string cannot be parsed; the message says where."""


def analyze(text: str) -> list[str]:
    return [token.lower() for token in _WORD.findall(text)]


def norm_name(name: str) -> str:
    """Entity names compare case-insensitively with collapsed whitespace."""
    return " ".join(name.lower().split())


@dataclass(frozen=True)
class Text:
    """A word or phrase in one text field, or in any of them (``field`` None)."""

    raw: str
    tokens: tuple[str, ...]
    field: str | None = None


@dataclass(frozen=True)
class Keyword:
    """An exact filter on a keyword field: topic, entity (any label or one label), source, language."""

    field: str
    value: str


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    child: Node


Node = Text | Keyword | And | Or | Not

_LEX = re.compile(
    r'\s*(?:(?P<paren>[()])|(?P<field>[A-Za-z]+):(?=\S)|"(?P<quoted>[^"]*)"|(?P<word>[^\s()"]+))'
)


def _lex(query: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    query = query.rstrip()
    while pos < len(query):
        match = _LEX.match(query, pos)
        if match is None or match.end() == pos:
            raise QuerySyntaxError(f"unexpected character at {pos}: {query[pos : pos + 10]!r}")
        pos = match.end()
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
    return tokens


class _Parser:
    def __init__(self, query: str) -> None:
        self.tokens = _lex(query)
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def parse(self) -> Node:
        if not self.tokens:
            raise QuerySyntaxError("empty query")
        node = self.or_expr()
        if self.peek() is not None:
            raise QuerySyntaxError(f"unexpected {self.peek()[1]!r}")  # type: ignore[index]  # checked above
        return node

    def or_expr(self) -> Node:
        children = [self.and_expr()]
        while self.peek() == ("word", "OR"):
            self.take()
            children.append(self.and_expr())
        return children[0] if len(children) == 1 else Or(tuple(children))

    def and_expr(self) -> Node:
        children = [self.unary()]
        while (token := self.peek()) is not None and token not in {("paren", ")"), ("word", "OR")}:
            if token == ("word", "AND"):
                self.take()
            children.append(self.unary())
        return children[0] if len(children) == 1 else And(tuple(children))

    def unary(self) -> Node:
        token = self.peek()
        if token == ("word", "NOT"):
            self.take()
            return Not(self.unary())
        if token is not None and token[0] == "word" and token[1].startswith("-"):
            if len(token[1]) == 1:  # "-(a OR b)", '-"a phrase"'
                self.take()
            else:
                self.tokens[self.pos] = ("word", token[1][1:])
            return Not(self.unary())
        return self.primary()

    def primary(self) -> Node:
        if self.peek() is None:
            raise QuerySyntaxError("query ends where a term was expected")
        kind, value = self.take()
        if (kind, value) == ("paren", "("):
            node = self.or_expr()
            if self.peek() != ("paren", ")"):
                raise QuerySyntaxError("missing ')'")
            self.take()
            return node
        if kind == "paren" or value in {"AND", "OR"}:
            raise QuerySyntaxError(f"unexpected {value!r}")
        if kind == "field":
            field = value.lower()
            if self.peek() is None or self.peek()[0] not in {"quoted", "word"}:  # type: ignore[index]
                raise QuerySyntaxError(f"{field}: needs a value")
            _, operand = self.take()
            if field in TEXT_FIELDS:
                return self._text(operand, field)
            if field not in KEYWORD_FIELDS:
                raise QuerySyntaxError(f"unknown field {field!r}")
            return Keyword("lang" if field == "language" else field, operand)
        if value.endswith(":") and value[:-1].isalpha():
            raise QuerySyntaxError(f"{value} needs a value")
        return self._text(value, None)

    @staticmethod
    def _text(raw: str, field: str | None) -> Text:
        tokens = tuple(analyze(raw))
        if not tokens:
            raise QuerySyntaxError(f"{raw!r} has no searchable word")
        return Text(raw, tokens, field)


def parse(query: str) -> Node:
    return _Parser(query).parse()


# --- Elasticsearch ------------------------------------------------------------------------------


def entity_es(name: str, label: str | None = None) -> dict[str, Any]:
    """Canonical name or surface form (any case), plus the person surname equivalence the stream
    applies."""
    fields = [label] if label else list(ENTITY_FIELDS)
    should: list[dict[str, Any]] = [
        {"term": {f"{group}.{field}": {"value": name, "case_insensitive": True}}}
        for group in ENTITY_GROUPS
        for field in fields
    ]
    if "person" in fields:
        parts = name.split()
        if len(parts) == 1:  # "Blinken" matches the canonical "Antony Blinken"
            pattern = "* " + re.sub(r"([*?\\])", r"\\\1", parts[0])
            should.append({"wildcard": {"entities.person": {"value": pattern, "case_insensitive": True}}})
        else:  # "Antony Blinken" matches an article that only knows "Blinken"
            should.append({"term": {"entities.person": {"value": parts[-1], "case_insensitive": True}}})
    return {"bool": {"should": should, "minimum_should_match": 1}}


def to_es(node: Node) -> dict[str, Any]:  # noqa: PLR0911 - one clause per kind of query node
    if isinstance(node, Text):
        if node.field:
            return {"match_phrase": {node.field: node.raw}}
        return {"multi_match": {"query": node.raw, "type": "phrase", "fields": list(TEXT_FIELDS)}}
    if isinstance(node, Keyword):
        if node.field == "topic":
            return {"term": {"topics": node.value}}
        if node.field == "source":
            return {"term": {"source.domain": {"value": node.value, "case_insensitive": True}}}
        if node.field == "lang":
            return {"term": {"language": node.value.lower()}}
        return entity_es(node.value, None if node.field == "entity" else node.field)
    if isinstance(node, And):
        return {"bool": {"filter": [to_es(child) for child in node.children]}}
    if isinstance(node, Or):
        return {"bool": {"should": [to_es(child) for child in node.children], "minimum_should_match": 1}}
    return {"bool": {"must_not": [to_es(node.child)]}}
