"""Search over the article alias: the query behind ``newsflow search``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from elasticsearch import Elasticsearch

from index.stage import ENTITY_GROUPS
from newsflow.schemas import ENTITY_LABELS

_SINCE = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": "m", "h": "h", "d": "d", "w": "w"}


@dataclass(frozen=True)
class SearchQuery:
    text: str = ""
    topics: tuple[str, ...] = ()
    entities: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    language: str | None = None
    since: str | None = None
    paywalled: bool | None = None
    size: int = 10


def date_math(since: str) -> str:
    """``7d`` -> ``now-7d``: relative windows as users type them."""
    match = _SINCE.match(since.strip())
    if not match:
        raise ValueError(f"--since takes a number and one of m/h/d/w, e.g. 7d, not {since!r}")
    return f"now-{match.group(1)}{_UNITS[match.group(2)]}"


# The language subfields exist only where the cluster has language analyzers (see index.setup);
# Elasticsearch ignores unmapped fields in a query, so one field list serves both kinds of cluster.
TEXT_FIELDS = tuple(
    f"{field}{sub}^{boost}"
    for field, boost in (("title", 3), ("description", 2), ("body", 1))
    for sub in ("", ".german", ".english")
)


def build_query(query: SearchQuery, text_fields: tuple[str, ...] = TEXT_FIELDS) -> dict[str, Any]:
    must: list[dict[str, Any]] = []
    filters: list[dict[str, Any]] = []
    if query.text.strip():
        must.append(
            {
                "simple_query_string": {
                    "query": query.text,
                    "fields": list(text_fields),
                    "default_operator": "and",
                }
            }
        )
    filters.extend({"term": {"topics": topic}} for topic in query.topics)
    for entity in query.entities:
        filters.append(
            {
                "multi_match": {
                    "query": entity,
                    "type": "phrase",
                    # canonical names and every other surface form: "--entity Mexikos" finds Mexiko
                    "fields": [f"{group}.{label}" for group in ENTITY_GROUPS for label in ENTITY_LABELS],
                }
            }
        )
    if query.sources:
        filters.append(
            {
                "bool": {
                    "should": [
                        {"terms": {"source.domain": list(query.sources)}},
                        {"terms": {"source.name": list(query.sources)}},
                    ]
                }
            }
        )
    if query.language:
        filters.append({"term": {"language": query.language}})
    if query.since:
        filters.append({"range": {"@timestamp": {"gte": date_math(query.since)}}})
    if query.paywalled is not None:
        filters.append({"term": {"paywalled": query.paywalled}})
    return {"bool": {"must": must or [{"match_all": {}}], "filter": filters}}


def search(es: Elasticsearch, alias: str, query: SearchQuery) -> dict[str, Any]:
    response = es.search(
        index=alias,
        query=build_query(query),
        size=query.size,
        sort=["_score", {"@timestamp": "desc"}] if query.text.strip() else [{"@timestamp": "desc"}],
        highlight={
            "fields": {
                "title": {"number_of_fragments": 0},
                "body": {"fragment_size": 160, "number_of_fragments": 2},
            },
            # Matches in the language subfields (title.german, ...) highlight the stored field too.
            "require_field_match": False,
            "pre_tags": ["**"],
            "post_tags": ["**"],
        },
        source_excludes=["body", "entity_details", "entity_surface", "topic_evidence"],
        track_total_hits=True,
    )
    hits = []
    for hit in response["hits"]["hits"]:
        src = hit["_source"]
        hits.append(
            {
                "id": hit["_id"],
                "url": src.get("url"),
                "title": src.get("title"),
                "@timestamp": src.get("@timestamp"),
                "source": src.get("source", {}),
                "language": src.get("language"),
                "topics": src.get("topics", []),
                "entities": src.get("entities", {}),
                "paywalled": src.get("paywalled", False),
                "score": hit.get("_score"),
                "highlights": [frag for frags in hit.get("highlight", {}).values() for frag in frags],
            }
        )
    return {"total": response["hits"]["total"]["value"], "hits": hits}
