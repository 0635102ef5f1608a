"""Index set-up, bulk writes, revisions and search against the real Elasticsearch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from elasticsearch import Elasticsearch

from index.client import capabilities
from index.search import SearchQuery, search
from index.setup import index_name, setup
from index.stage import ElasticsearchBulkSink, IndexAction, IndexStage
from newsflow.errors import PermanentError, SkipMessage
from newsflow.schemas import Article, EnrichedArticle, Entity, TopicScore
from newsflow.settings import ElasticsearchSettings

pytestmark = pytest.mark.elasticsearch


def enriched(
    n: int, revision: int = 1, title: str | None = None, language: str = "en", **article: object
) -> EnrichedArticle:
    now = datetime.now(UTC)
    body = f"Body of article {n}. The interior minister met border officials to discuss migration policy."
    return EnrichedArticle(
        article=Article(
            article_id=f"{n:032x}",
            url=f"https://news.example/{n}",
            canonical_url=f"https://news.example/{n}",
            title=title or f"Article number {n}",
            body=body,
            source_domain="news.example",
            publisher="Example News",
            body_hash=f"{revision:064x}",
            revision=revision,
            published_at=now - timedelta(hours=n),
            fetched_at=now,
            **article,  # type: ignore[arg-type]
        ),
        language=language,
        language_confidence=0.99,
        entities=(
            Entity(
                name="Joe Biden",
                label="person",
                mentions=2,
                first_offset=0,
                in_title=False,
                surface_forms=("Biden", "Joe Biden"),
            ),
        ),
        topics=(TopicScore(name="migration", score=0.8, evidence=("migration policy",)),),
        enriched_at=now,
    )


def write(es: Elasticsearch, settings: ElasticsearchSettings, *items: EnrichedArticle):
    sink = ElasticsearchBulkSink(es, settings.alias, refresh=True)
    return sink.write([IndexStage().process(item) for item in items])


def test_setup_is_idempotent_and_reports_what_it_applied(es_client, es_settings):
    first = setup(es_client, es_settings)
    second = setup(es_client, es_settings)
    assert first.created_index and first.created_alias
    assert not second.created_index and not second.created_alias
    assert es_client.indices.get_alias(name=es_settings.alias) == {
        index_name(es_settings): {"aliases": {es_settings.alias: {"is_write_index": True}}}
    }
    caps = capabilities(es_client)
    assert first.language_analyzers == caps.language_analyzers
    assert ("analysis-common" in first.missing_modules) != caps.language_analyzers


def test_replayed_messages_leave_one_document_per_article(es_client, es_settings):
    setup(es_client, es_settings)
    items = [enriched(n) for n in range(5)]
    assert write(es_client, es_settings, *items) == []
    assert write(es_client, es_settings, *items) == []  # the replay
    assert es_client.count(index=es_settings.alias)["count"] == 5
    doc = es_client.get(index=es_settings.alias, id=f"{3:032x}")
    assert doc["_source"]["entities"]["person"] == ["Joe Biden"]
    assert doc["_source"]["topics"] == ["migration"]


def test_newer_revision_wins_and_older_never_overwrites(es_client, es_settings):
    setup(es_client, es_settings)
    assert write(es_client, es_settings, enriched(1, revision=2, title="Second version")) == []
    stale = write(es_client, es_settings, enriched(1, revision=1, title="First version"))
    assert len(stale) == 1 and isinstance(stale[0][1], SkipMessage) and stale[0][1].reason == "stale_revision"
    assert write(es_client, es_settings, enriched(1, revision=3, title="Third version")) == []
    assert es_client.get(index=es_settings.alias, id=f"{1:032x}")["_source"]["title"] == "Third version"


def test_a_recheck_is_written_only_when_the_body_changed_and_then_as_the_next_revision(
    es_client, es_settings
):
    setup(es_client, es_settings)
    assert write(es_client, es_settings, enriched(1), enriched(2)) == []

    def recheck(n: int, body_hash: str, title: str) -> EnrichedArticle:
        message = enriched(n, title=title)
        article = message.article.model_copy(update={"recheck": True, "body_hash": body_hash})
        return message.model_copy(update={"article": article})

    same, changed = recheck(1, f"{1:064x}", "Same body"), recheck(2, "e" * 64, "Edited on the site")
    unseen = recheck(3, "f" * 64, "Not indexed yet")
    failures = write(es_client, es_settings, same, enriched(4), changed, unseen)
    assert [(position, error.reason) for position, error in failures] == [(0, "unchanged_on_recheck")]
    first, edited = (es_client.get(index=es_settings.alias, id=f"{n:032x}") for n in (1, 2))
    assert (first["_version"], first["_source"]["title"]) == (1, "Article number 1")
    assert (edited["_version"], edited["_source"]["revision"]) == (2, 2)
    assert edited["_source"]["title"] == "Edited on the site"
    assert es_client.get(index=es_settings.alias, id=f"{3:032x}")["_source"]["title"] == "Not indexed yet"
    assert es_client.count(index=es_settings.alias)["count"] == 4
    # the same recheck delivered again finds its own write: unchanged now
    assert [e.reason for _, e in write(es_client, es_settings, changed)] == ["unchanged_on_recheck"]


def test_a_document_the_mapping_rejects_fails_alone(es_client, es_settings):
    setup(es_client, es_settings)
    good = IndexStage().process(enriched(1))
    bad = IndexAction(f"{2:032x}", 1, {**IndexStage().process(enriched(2)).document, "unmapped_field": 1})
    failures = ElasticsearchBulkSink(es_client, es_settings.alias, refresh=True).write([good, bad])
    assert [(i, type(e)) for i, e in failures] == [(1, PermanentError)]
    assert failures[0][1].reason.startswith("mapping_")
    assert es_client.count(index=es_settings.alias)["count"] == 1


def test_search_filters_and_aggregations(es_client, es_settings):
    setup(es_client, es_settings)
    write(
        es_client,
        es_settings,
        enriched(1, title="Border talks in Mexico"),
        enriched(2, title="Bundestag debattiert Migration", language="de"),
        enriched(3, title="Old football news", paywalled=True),
    )
    hits = search(es_client, es_settings.alias, SearchQuery(text="border talks"))
    assert [h["title"] for h in hits["hits"]] == ["Border talks in Mexico"]
    assert any("**" in fragment for fragment in hits["hits"][0]["highlights"])
    assert search(es_client, es_settings.alias, SearchQuery(language="de"))["total"] == 1
    assert search(es_client, es_settings.alias, SearchQuery(entities=("Joe Biden",)))["total"] == 3
    assert search(es_client, es_settings.alias, SearchQuery(entities=("Nobody Known",)))["total"] == 0
    assert (
        search(es_client, es_settings.alias, SearchQuery(topics=("migration",), since="150m"))["total"] == 2
    )
    assert search(es_client, es_settings.alias, SearchQuery(since="30m"))["total"] == 0
    assert search(es_client, es_settings.alias, SearchQuery(sources=("news.example",)))["total"] == 3
    assert search(es_client, es_settings.alias, SearchQuery(paywalled=True))["total"] == 1
    aggs = es_client.search(
        index=es_settings.alias,
        size=0,
        aggs={"topics": {"terms": {"field": "topics"}}, "people": {"terms": {"field": "entities.person"}}},
    )["aggregations"]
    assert aggs["topics"]["buckets"] == [{"key": "migration", "doc_count": 3}]
    assert aggs["people"]["buckets"] == [{"key": "Joe Biden", "doc_count": 3}]
