"""Alert history in Elasticsearch: what fired, when and why — and the durable once-per-story record.

The document ``_id`` is the alert id (a hash of rule and story). Creating it (``op_type=create``) is
the claim that makes exactly one worker fire an alert; every later change is a compare-and-set on
``_seq_no``/``_primary_term``, so two workers never both act on the same state (no scripts needed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from elasticsearch import ApiError, ConflictError, Elasticsearch, NotFoundError, TransportError

from newsflow.errors import RetryableError

_K = {"type": "keyword"}
_D = {"type": "date"}
MAPPING: dict[str, Any] = {
    "dynamic": False,
    "properties": {
        "doc_type": _K,
        "alert_id": _K,
        "rule_id": _K,
        "rule_name": _K,
        "story_id": _K,
        "first_article_id": _K,
        "status": _K,
        "hold_reason": _K,
        "digest_id": _K,
        "matched_terms": _K,
        "item_count": {"type": "integer"},
        "created_at": _D,
        "fired_at": _D,
        "due_at": _D,
        "updated_at": _D,
        "lease_owner": _K,
        "lease_until": _D,
        "window_start": _D,
        "items": {
            "properties": {
                "article_id": _K,
                "title": {"type": "text"},
                "url": _K,
                "source": _K,
                "published_at": _D,
                "joined_at": _D,
                "revision": {"type": "integer"},
            }
        },
        "deliveries": {
            "properties": {
                "channel": _K,
                "status": _K,
                "attempts": {"type": "integer"},
                "error": {"type": "text"},
            }
        },
    },
}


@dataclass
class Versioned:
    """A history document with the version it was read at (for compare-and-set)."""

    doc_id: str
    source: dict[str, Any]
    seq_no: int
    primary_term: int


def _retryable(exc: Exception) -> RetryableError:
    return RetryableError("alert_history_unavailable", f"{type(exc).__name__}: {exc}"[:500])


class HistoryStore:
    def __init__(self, es: Elasticsearch, index: str) -> None:
        self.es = es
        self.index = index

    def ensure(self) -> None:
        """Create the history index if missing (idempotent; one shard, no replicas like the articles)."""
        if self.es.indices.exists(index=self.index):
            return
        try:
            self.es.indices.create(
                index=self.index,
                mappings=MAPPING,
                settings={"number_of_shards": 1, "number_of_replicas": 0},
            )
        except ApiError as exc:
            if "resource_already_exists" not in str(exc):
                raise

    def create(self, doc_id: str, source: dict[str, Any]) -> Versioned | None:
        """The claim: None if the document exists already."""
        try:
            response = self.es.create(index=self.index, id=doc_id, document=source)
        except ConflictError:
            return None
        except (TransportError, ApiError) as exc:
            raise _retryable(exc) from exc
        return Versioned(doc_id, source, response["_seq_no"], response["_primary_term"])

    def get(self, doc_id: str) -> Versioned | None:
        try:
            response = self.es.get(index=self.index, id=doc_id)
        except NotFoundError:
            return None
        except (TransportError, ApiError) as exc:
            raise _retryable(exc) from exc
        return Versioned(doc_id, response["_source"], response["_seq_no"], response["_primary_term"])

    def replace(self, doc: Versioned) -> bool:
        """Write ``doc.source`` if nobody changed it since it was read; updates the version in place."""
        try:
            response = self.es.index(
                index=self.index,
                id=doc.doc_id,
                document=doc.source,
                if_seq_no=doc.seq_no,
                if_primary_term=doc.primary_term,
            )
        except ConflictError:
            return False
        except (TransportError, ApiError) as exc:
            raise _retryable(exc) from exc
        doc.seq_no, doc.primary_term = response["_seq_no"], response["_primary_term"]
        return True

    def update(self, doc: Versioned, change: Callable[[dict[str, Any]], None], owner: str) -> None:
        """Apply ``change`` as the lease holder ``owner``: on a conflict (another worker joined an
        article meanwhile) re-read and re-apply, unless the lease changed hands."""
        for _ in range(20):
            change(doc.source)
            if self.replace(doc):
                return
            fresh = self.get(doc.doc_id)
            if fresh is None or fresh.source.get("lease_owner") != owner:
                raise RetryableError("alert_taken_over", doc.doc_id)
            doc.source, doc.seq_no, doc.primary_term = fresh.source, fresh.seq_no, fresh.primary_term
        raise RetryableError("alert_history_contended", doc.doc_id)

    def due(self, now: datetime, size: int = 500) -> list[Versioned]:
        """Held alerts whose time has come, and digests whose worker died mid-send (lease expired)."""
        self.es.indices.refresh(index=self.index)
        stamp = now.isoformat()
        response = self.es.search(
            index=self.index,
            size=size,
            seq_no_primary_term=True,
            sort=[{"due_at": "asc"}],
            query={
                "bool": {
                    "filter": [{"term": {"doc_type": "alert"}}],
                    "should": [
                        {
                            "bool": {
                                "filter": [
                                    {"term": {"status": "held"}},
                                    {"range": {"due_at": {"lte": stamp}}},
                                ]
                            }
                        },
                        {
                            "bool": {
                                "filter": [
                                    {"term": {"status": "digesting"}},
                                    {"range": {"lease_until": {"lt": stamp}}},
                                ]
                            }
                        },
                    ],
                    "minimum_should_match": 1,
                }
            },
        )
        return [
            Versioned(hit["_id"], hit["_source"], hit["_seq_no"], hit["_primary_term"])
            for hit in response["hits"]["hits"]
        ]

    def search(self, query: dict[str, Any], size: int = 50) -> list[dict[str, Any]]:
        self.es.indices.refresh(index=self.index)
        response = self.es.search(index=self.index, query=query, size=size, sort=[{"created_at": "desc"}])
        return [hit["_source"] for hit in response["hits"]["hits"]]
