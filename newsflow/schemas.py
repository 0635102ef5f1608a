"""Wire messages between the stages.

Every message carries ``kind`` and ``schema_version`` so a consumer can reject what it does not
understand instead of guessing. The JSON Schema files under ``newsflow/wire/`` are generated from
these models (``newsflow schema export``) and a test keeps them in step, so a change of the wire
format is always a visible, versioned change.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

SCHEMA_VERSION: Literal[1] = 1

EntityLabel = Literal["person", "org", "location", "misc"]
ENTITY_LABELS: tuple[EntityLabel, ...] = ("person", "org", "location", "misc")


class WireModel(BaseModel):
    """Frozen, strict base: unknown fields are errors, not silently dropped data."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    topic_role: ClassVar[str] = ""

    def key(self) -> str:
        """Kafka key: messages about one article share a partition, so their order holds."""
        raise NotImplementedError


class LinkMessage(WireModel):
    """A feed item worth fetching, as discovered by the poller."""

    topic_role: ClassVar[str] = "links"
    kind: Literal["link"] = "link"
    schema_version: Literal[1] = SCHEMA_VERSION
    url: str
    canonical_url: str
    article_id: str
    feed_url: str
    publisher: str
    language_hint: str | None = None
    title: str | None = None
    published_at: AwareDatetime | None = None
    discovered_at: AwareDatetime
    modified_at: AwareDatetime | None = Field(default=None, description="The feed item's modified date.")
    revision: Annotated[int, Field(ge=1)] = Field(
        default=1, description="1 for a new article; the poller counts up when the feed lists a change."
    )
    recheck: bool = Field(
        default=False,
        description="The feed item is unchanged; the page is fetched again in case the site edited it.",
    )

    def key(self) -> str:
        return self.article_id


class Article(WireModel):
    """An extracted article: what ingest hands to enrichment."""

    topic_role: ClassVar[str] = "articles"
    kind: Literal["article"] = "article"
    schema_version: Literal[1] = SCHEMA_VERSION
    article_id: str
    url: str
    canonical_url: str
    title: str
    body: str
    description: str | None = None
    authors: tuple[str, ...] = ()
    published_at: AwareDatetime | None = None
    modified_at: AwareDatetime | None = None
    site_name: str | None = None
    language: str | None = Field(default=None, description="Declared by the page or feed, not detected.")
    categories: tuple[str, ...] = ()
    top_image: str | None = None
    feed_url: str | None = None
    publisher: str | None = None
    source_domain: str
    paywalled: bool = False
    body_hash: str
    revision: Annotated[int, Field(ge=1)] = 1
    recheck: bool = Field(
        default=False, description="A re-fetch of an unchanged feed item: indexed only if the body changed."
    )
    fetched_at: AwareDatetime

    def key(self) -> str:
        return self.article_id


class Entity(WireModel):
    name: str = Field(description="Canonical name, the value users filter and alert on.")
    label: EntityLabel
    mentions: Annotated[int, Field(ge=1)]
    first_offset: Annotated[int, Field(ge=0)]
    in_title: bool
    surface_forms: tuple[str, ...] = ()


class TopicScore(WireModel):
    name: str
    score: Annotated[float, Field(ge=0.0, le=1.0)]
    evidence: tuple[str, ...] = ()


class EnrichedArticle(WireModel):
    """An article with language, entities, topics and story: what the indexer and alerts consume."""

    topic_role: ClassVar[str] = "enriched"
    kind: Literal["enriched"] = "enriched"
    schema_version: Literal[1] = SCHEMA_VERSION
    article: Article
    language: str
    language_confidence: Annotated[float, Field(ge=0.0, le=1.0)]
    entities: tuple[Entity, ...] = ()
    topics: tuple[TopicScore, ...] = ()
    story_id: str | None = None
    keywords: tuple[str, ...] = ()
    notes: tuple[str, ...] = Field(default=(), description="Why a part of enrichment was skipped.")
    enriched_at: AwareDatetime

    def key(self) -> str:
        return self.article.article_id


class DeadLetter(WireModel):
    """A message a stage could not handle, kept verbatim so ``newsflow dlq replay`` can resend it."""

    topic_role: ClassVar[str] = "dead-letters"
    kind: Literal["dead_letter"] = "dead_letter"
    schema_version: Literal[1] = SCHEMA_VERSION
    stage: str
    source_topic: str
    partition: int
    offset: int
    original_key: str | None
    original_value: str = Field(description="The original bytes, as UTF-8 text or base64 (see encoding).")
    encoding: Literal["utf-8", "base64"]
    error_type: str
    reason: str
    detail: str
    attempts: int
    failed_at: datetime

    def key(self) -> str:
        return f"{self.source_topic}:{self.partition}:{self.offset}"


class AlertItem(WireModel):
    """One article an alert (or digest) reports."""

    article_id: str
    story_id: str
    title: str
    url: str
    source: str
    published_at: AwareDatetime | None = None
    matched_terms: tuple[str, ...] = ()


class AlertEvent(WireModel):
    """A delivered alert or digest as the Kafka channel publishes it (issue #6)."""

    topic_role: ClassVar[str] = "alerts"
    kind: Literal["alert"] = "alert"
    schema_version: Literal[1] = SCHEMA_VERSION
    alert_id: str = Field(description="Deterministic per (rule, story) or digest; receivers dedupe on it.")
    rule_id: str
    rule_name: str
    mode: Literal["single", "digest"]
    items: tuple[AlertItem, ...]
    fired_at: AwareDatetime

    def key(self) -> str:
        return self.alert_id


WIRE_MODELS: tuple[type[WireModel], ...] = (LinkMessage, Article, EnrichedArticle, DeadLetter, AlertEvent)
