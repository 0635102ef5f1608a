"""The index stage: an enriched article in, one Elasticsearch document out, written in bulk.

``_id`` is the article id (a hash of the canonical URL), and the document version is the
article's revision with ``external_gte`` versioning: replays overwrite with identical content,
an older revision can never overwrite a newer one, and no scripting module is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from elasticsearch import ApiError, ConnectionError, ConnectionTimeout, Elasticsearch, TransportError

from newsflow.errors import PermanentError, RetryableError, SkipMessage, StageError
from newsflow.schemas import EnrichedArticle

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


def entity_surface(details: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Each label's surface forms that differ from the canonical names (mapping v3)."""
    surface: dict[str, list[str]] = {"person": [], "org": [], "location": [], "misc": []}
    for entity in details:
        forms = surface.setdefault(str(entity.get("label")), [])
        forms.extend(
            f for f in entity.get("surface_forms") or () if f != entity.get("name") and f not in forms
        )
    return surface


def to_document(enriched: EnrichedArticle) -> dict[str, Any]:
    article = enriched.article
    entities: dict[str, list[str]] = {"person": [], "org": [], "location": [], "misc": []}
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
        return IndexAction(message.article.article_id, message.article.revision, to_document(message))


class ElasticsearchBulkSink:
    """Bulk-writes actions to the alias; classifies each item's fate."""

    def __init__(self, es: Elasticsearch, alias: str, refresh: bool = False) -> None:
        self.es = es
        self.alias = alias
        self.refresh = refresh

    def write(self, results: Sequence[IndexAction]) -> Sequence[tuple[int, StageError]]:
        # One action per id: within a batch the highest revision wins, like it would across batches.
        operations: list[dict[str, Any]] = []
        for action in results:
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
        try:
            response = self.es.bulk(operations=operations, refresh=self.refresh)
        except (ConnectionError, ConnectionTimeout) as exc:
            raise RetryableError("elasticsearch_unavailable", str(exc)) from exc
        except ApiError as exc:
            if exc.meta.status == 429 or exc.meta.status >= 500:
                raise RetryableError(f"elasticsearch_{exc.meta.status}", str(exc)) from exc
            raise
        except TransportError as exc:
            raise RetryableError("elasticsearch_transport", str(exc)) from exc
        failures: list[tuple[int, StageError]] = []
        retry = False
        for position, item in enumerate(response["items"]):
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
