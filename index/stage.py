"""The index stage: an enriched article in, one Elasticsearch document out, written in bulk.

``_id`` is the article id (a hash of the canonical URL), and the document version is the
article's revision with ``external_gte`` versioning: replays overwrite with identical content,
an older revision can never overwrite a newer one, and no scripting module is needed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from elasticsearch import ApiError, ConnectionError, ConnectionTimeout, Elasticsearch, TransportError

from newsflow.errors import PermanentError, RetryableError, SkipMessage, StageError
from newsflow.schemas import ENTITY_LABELS, EnrichedArticle

SHORT_BODY_CHARS = 500


def extraction_health(
    body: str, description: str | None, authors: Sequence[str], has_published_at: bool
) -> dict[str, Any]:
    """Per-article extraction signals, aggregatable per source (the Kibana health panel, ``stats``).

    Shared with the v1 -> v2 migration, so old and new documents are judged alike.
    """
    flags = []
    if not has_published_at:
        flags.append("no_published_at")
    if not authors:
        flags.append("no_authors")
    if not description:
        flags.append("no_description")
    if len(body) < SHORT_BODY_CHARS:
        flags.append("short_body")
    return {"body_chars": len(body), "quality_flags": flags}


@dataclass(frozen=True)
class IndexAction:
    doc_id: str
    version: int
    document: dict[str, Any]
    recheck: bool = False  # written only if the indexed body differs, as the next revision


# The document's entity fields: canonical names, then every other surface form seen (mapping v3).
ENTITY_GROUPS = ("entities", "entity_surface")


def entity_surface(details: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Each label's surface forms that differ from the canonical names (mapping v3)."""
    surface: dict[str, list[str]] = {label: [] for label in ENTITY_LABELS}
    for entity in details:
        forms = surface.setdefault(str(entity.get("label")), [])
        forms.extend(
            f for f in entity.get("surface_forms") or () if f != entity.get("name") and f not in forms
        )
    return surface


def to_document(enriched: EnrichedArticle) -> dict[str, Any]:
    article = enriched.article
    entities: dict[str, list[str]] = {label: [] for label in ENTITY_LABELS}
    for entity in enriched.entities:
        entities[entity.label].append(entity.name)
    details = [entity.model_dump() for entity in enriched.entities]
    timestamp = article.published_at or article.fetched_at
    return {
        "@timestamp": timestamp.isoformat(),
        "modified_at": article.modified_at.isoformat() if article.modified_at else None,
        "ingested_at": article.fetched_at.isoformat(),
        "indexed_at": datetime.now(UTC).isoformat(),
        "article_id": article.article_id,
        "url": article.url,
        "canonical_url": article.canonical_url,
        "title": article.title,
        "body": article.body,
        "description": article.description,
        "authors": list(article.authors),
        "language": enriched.language,
        "language_confidence": enriched.language_confidence,
        "source": {"domain": article.source_domain, "name": article.publisher or article.site_name},
        "feed": article.feed_url,
        "paywalled": article.paywalled,
        "story_id": enriched.story_id,
        "entities": entities,
        "entity_surface": entity_surface(details),
        "entity_details": details,
        "topics": [topic.name for topic in enriched.topics],
        "topic_scores": {topic.name: topic.score for topic in enriched.topics},
        "topic_evidence": {topic.name: list(topic.evidence) for topic in enriched.topics},
        "keywords": list(enriched.keywords),
        "categories": list(article.categories),
        "top_image": article.top_image,
        "revision": article.revision,
        "body_hash": article.body_hash,
        "enrichment_notes": list(enriched.notes),
        **extraction_health(
            article.body, article.description, article.authors, article.published_at is not None
        ),
    }


class IndexStage:
    name = "index"
    input_model = EnrichedArticle

    def process(self, message: EnrichedArticle) -> IndexAction:
        article = message.article
        return IndexAction(article.article_id, article.revision, to_document(message), article.recheck)


@contextmanager
def _elasticsearch_errors() -> Iterator[None]:
    """Outages and overload are retried (the loop backs off, then rewinds); anything else is raised."""
    try:
        yield
    except (ConnectionError, ConnectionTimeout) as exc:
        raise RetryableError("elasticsearch_unavailable", str(exc)) from exc
    except ApiError as exc:
        if exc.meta.status == 429 or exc.meta.status >= 500:
            raise RetryableError(f"elasticsearch_{exc.meta.status}", str(exc)) from exc
        raise
    except TransportError as exc:
        raise RetryableError("elasticsearch_transport", str(exc)) from exc


class ElasticsearchBulkSink:
    """Bulk-writes actions to the alias; classifies each item's fate."""

    def __init__(self, es: Elasticsearch, alias: str, refresh: bool = False) -> None:
        self.es = es
        self.alias = alias
        self.refresh = refresh

    def write(self, results: Sequence[IndexAction]) -> Sequence[tuple[int, StageError]]:
        failures: list[tuple[int, StageError]] = []
        pending: list[tuple[int, IndexAction]] = []  # (position in results, action to write)
        resolved = self._resolve_rechecks([a for a in results if a.recheck])
        for position, action in enumerate(results):
            outcome = resolved.get(action.doc_id, action) if action.recheck else action
            if isinstance(outcome, StageError):
                failures.append((position, outcome))
            else:
                pending.append((position, outcome))
        if not pending:
            return failures
        # One action per id: within a batch the highest revision wins, like it would across batches.
        operations: list[dict[str, Any]] = []
        for _, action in pending:
            operations.append(
                {
                    "index": {
                        "_index": self.alias,
                        "_id": action.doc_id,
                        "version": action.version,
                        "version_type": "external_gte",
                    }
                }
            )
            operations.append(action.document)
        with _elasticsearch_errors():
            response = self.es.bulk(operations=operations, refresh=self.refresh)
        return failures + self._item_failures(response, [position for position, _ in pending])

    def _resolve_rechecks(self, rechecks: Sequence[IndexAction]) -> dict[str, IndexAction | StageError]:
        """A re-fetched page is written only if its body changed, then as the indexed revision + 1;
        unchanged, it is skipped (counted as ``unchanged_on_recheck``)."""
        if not rechecks:
            return {}
        with _elasticsearch_errors():
            response = self.es.mget(
                index=self.alias,
                ids=[a.doc_id for a in rechecks],
                source_includes=["body_hash", "revision"],
            )
        indexed = {doc["_id"]: doc["_source"] for doc in response["docs"] if doc.get("found")}
        resolved: dict[str, IndexAction | StageError] = {}
        for action in rechecks:
            current = indexed.get(action.doc_id)
            if current is None:  # not indexed yet (or only just): an ordinary write
                resolved[action.doc_id] = action
            elif current.get("body_hash") == action.document["body_hash"]:
                resolved[action.doc_id] = SkipMessage("unchanged_on_recheck", action.doc_id)
            else:
                revision = max(int(current.get("revision") or 1) + 1, action.version)
                document = {**action.document, "revision": revision}
                resolved[action.doc_id] = IndexAction(action.doc_id, revision, document)
        return resolved

    @staticmethod
    def _item_failures(response: Any, positions: Sequence[int]) -> list[tuple[int, StageError]]:
        failures: list[tuple[int, StageError]] = []
        retry = False
        for position, item in zip(positions, response["items"], strict=True):
            outcome = item["index"]
            status = int(outcome.get("status", 500))
            if status < 300:
                continue
            error = outcome.get("error", {})
            kind = str(error.get("type", f"status_{status}"))
            if status == 409:
                failures.append((position, SkipMessage("stale_revision", str(error.get("reason", "")))))
            elif status == 429 or status >= 500:
                retry = True
            else:
                failures.append(
                    (position, PermanentError(f"mapping_{kind}", str(error.get("reason", ""))[:500]))
                )
        if retry:
            # Items that did succeed are re-written with the same version: harmless under external_gte.
            raise RetryableError("elasticsearch_item_rejected", "429/5xx on some bulk items")
        return failures
