"""`newsflow search` and `newsflow stats` end to end (CLI -> real Elasticsearch -> one JSON object)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from index.setup import setup
from index.stage import ElasticsearchBulkSink, IndexStage
from newsflow.cli import main
from newsflow.schemas import EnrichedArticle, Entity, TopicScore
from tests.test_index_es import enriched

pytestmark = pytest.mark.elasticsearch

FEED_DE = "https://www.stern.de/feed/standard/politik/"
FEED_EN = "https://feeds.bbci.co.uk/news/world/rss.xml"


def variant(
    n: int,
    domain: str,
    feed: str,
    language: str,
    topics: tuple[str, ...],
    hours_ago: float,
    **article: object,
) -> EnrichedArticle:
    base = enriched(n, language=language)
    fetched = datetime.now(UTC) - timedelta(hours=hours_ago)
    return base.model_copy(
        update={
            "article": base.article.model_copy(
                update={"source_domain": domain, "feed_url": feed, "fetched_at": fetched, **article}
            ),
            "topics": tuple(TopicScore(name=t, score=0.7) for t in topics),
        }
    )


@pytest.fixture
def corpus(es_client, es_settings, monkeypatch: pytest.MonkeyPatch) -> list[EnrichedArticle]:
    monkeypatch.setenv("NEWSFLOW_ELASTICSEARCH_ALIAS", es_settings.alias)
    monkeypatch.setenv("NEWSFLOW_ELASTICSEARCH_INDEX_PREFIX", es_settings.index_prefix)
    setup(es_client, es_settings)
    articles = [
        variant(
            1, "stern.de", FEED_DE, "de", ("migration", "politics"), 1, title="Bundestag streitet über Asyl"
        ),
        variant(2, "stern.de", FEED_DE, "de", ("politics",), 3, title="Haushalt und Schuldenbremse"),
        variant(
            3, "bbc.co.uk", FEED_EN, "en", ("migration",), 30, title="Border talks resume", paywalled=True
        ),
        variant(4, "bbc.co.uk", FEED_EN, "en", ("sport",), 200, title="Rugby final in Cardiff"),
    ]
    merkel = Entity(
        name="Angela Merkel",
        label="person",
        mentions=1,
        first_offset=0,
        in_title=False,
        surface_forms=("Angela Merkel", "Merkels"),
    )
    articles[1] = articles[1].model_copy(update={"entities": (merkel,)})
    ElasticsearchBulkSink(es_client, es_settings.alias, refresh=True).write(
        [IndexStage().process(a) for a in articles]
    )
    return articles


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main([*argv, "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # exactly one JSON object on stdout
    payload: dict[str, Any] = json.loads(out)
    return payload


def titles(payload: dict[str, Any]) -> list[str]:
    return [hit["title"] for hit in payload["hits"]]


def test_search_json_shape_filters_and_highlights(corpus, capsys):
    result = run_json(capsys, "search", "border talks")
    assert result["total"] == 1
    (hit,) = result["hits"]
    assert {"url", "title", "@timestamp", "topics", "entities", "source", "language", "highlights"} <= set(
        hit
    )
    assert hit["url"] == "https://news.example/3" and hit["topics"] == ["migration"]
    assert hit["entities"]["person"] == ["Joe Biden"]
    assert any("**Border**" in fragment for fragment in hit["highlights"])

    assert titles(run_json(capsys, "search", "--topic", "migration", "--lang", "de")) == [
        "Bundestag streitet über Asyl"
    ]
    assert sorted(titles(run_json(capsys, "search", "--source", "bbc.co.uk"))) == [
        "Border talks resume",
        "Rugby final in Cardiff",
    ]
    assert titles(run_json(capsys, "search", "--entity", "Angela Merkel")) == ["Haushalt und Schuldenbremse"]
    assert titles(run_json(capsys, "search", "--entity", "Merkels")) == ["Haushalt und Schuldenbremse"]
    assert titles(run_json(capsys, "search", "--paywalled")) == ["Border talks resume"]
    assert run_json(capsys, "search", "--free")["total"] == 3
    # Newest first without a text query; --since filters on @timestamp (published).
    assert run_json(capsys, "search", "--since", "150m")["total"] == 2
    assert run_json(capsys, "search", "--topic", "politics", "--source", "bbc.co.uk")["total"] == 0


def test_stats_counts_per_source_topic_language_and_last_ingest_per_feed(corpus, capsys):
    stats = run_json(capsys, "stats")
    assert stats["total"] == 4
    assert stats["paywalled"] == 1
    assert stats["topics"] == {"migration": 2, "politics": 2, "sport": 1}
    assert stats["languages"] == {"de": 2, "en": 2}
    sources = stats["sources"]
    assert {k: v["articles"] for k, v in sources.items()} == {"stern.de": 2, "bbc.co.uk": 2}
    feeds = stats["feeds"]
    newest = {
        feed: max(a.article.fetched_at for a in corpus if a.article.feed_url == feed)
        for feed in (FEED_DE, FEED_EN)
    }
    for feed, fetched in newest.items():
        last = datetime.fromisoformat(feeds[feed]["last_ingest"])
        assert abs(last - fetched) < timedelta(milliseconds=1)
    assert stats["last_ingest"] == feeds[FEED_DE]["last_ingest"]
    assert stats["quality_flags"]["no_authors"] == 4

    assert main(["stats"]) == 0
    assert "stern.de" in capsys.readouterr().out
