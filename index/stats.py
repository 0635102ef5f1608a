"""``newsflow stats``: what is in the index, per source, topic, language and feed, in one request."""

from __future__ import annotations

from typing import Any

from elasticsearch import Elasticsearch


def _last(agg: dict[str, Any]) -> str | None:
    """A ``max`` date aggregation as ISO text (None when no document has the field)."""
    value: str | None = agg.get("value_as_string")
    return value


def _counts(agg: dict[str, Any]) -> dict[str, int]:
    return {str(b["key"]): int(b["doc_count"]) for b in agg["buckets"]}


def _with_last_ingest(agg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        str(b["key"]): {"articles": int(b["doc_count"]), "last_ingest": _last(b["last_ingest"])}
        for b in agg["buckets"]
    }


def index_stats(es: Elasticsearch, alias: str, top: int = 50) -> dict[str, Any]:
    """Counts and last-ingest times; ``top`` bounds every per-key table."""
    last_ingest = {"last_ingest": {"max": {"field": "ingested_at"}}}
    response = es.search(
        index=alias,
        size=0,
        track_total_hits=True,
        aggs={
            "last_ingest": {"max": {"field": "ingested_at"}},
            "paywalled": {"filter": {"term": {"paywalled": True}}},
            "sources": {"terms": {"field": "source.domain", "size": top}, "aggs": last_ingest},
            "feeds": {"terms": {"field": "feed", "size": top}, "aggs": last_ingest},
            "topics": {"terms": {"field": "topics", "size": top}},
            "languages": {"terms": {"field": "language", "size": top}},
            "quality_flags": {"terms": {"field": "quality_flags", "size": top}},
        },
    )
    aggs = response["aggregations"]
    return {
        "alias": alias,
        "total": int(response["hits"]["total"]["value"]),
        "last_ingest": _last(aggs["last_ingest"]),
        "paywalled": int(aggs["paywalled"]["doc_count"]),
        "sources": _with_last_ingest(aggs["sources"]),
        "feeds": _with_last_ingest(aggs["feeds"]),
        "topics": _counts(aggs["topics"]),
        "languages": _counts(aggs["languages"]),
        "quality_flags": _counts(aggs["quality_flags"]),
    }


def render(stats: dict[str, Any]) -> str:
    """The human-readable form of ``index_stats``."""
    lines = [
        f"{stats['total']} articles behind {stats['alias']}, {stats['paywalled']} paywalled; "
        f"last ingest {stats['last_ingest'] or '-'}"
    ]
    for title, key in (("sources", "sources"), ("feeds", "feeds")):
        lines.append(f"\n{title}:")
        lines.extend(
            f"  {row['articles']:>7}  {row['last_ingest'] or '-':<26} {name}"
            for name, row in stats[key].items()
        )
    for title in ("topics", "languages", "quality_flags"):
        lines.append(f"\n{title}:")
        lines.extend(f"  {n:>7}  {name}" for name, n in stats[title].items())
    return "\n".join(lines)
