"""The walking skeleton end to end on the real servers: sample feeds -> Kafka -> Elasticsearch."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from index.search import SearchQuery, search
from newsflow.demo.runner import demo_registry, expected_articles, expected_ids
from newsflow.demo.server import SiteServer, demo_site_root
from newsflow.pipeline import STAGES, PipelineRunner, PipelineSettings
from newsflow.settings import AlertSettings, HttpSettings, IngestSettings, LoopSettings

pytestmark = [pytest.mark.kafka, pytest.mark.elasticsearch]


@pytest.fixture
def site():
    with SiteServer(demo_site_root()) as server:
        yield server


def run_pipeline(settings: PipelineSettings, idle_exit_s: float = 8.0) -> PipelineRunner:
    runner = PipelineRunner(settings, STAGES)
    runner.run(threading.Event(), idle_exit_s=idle_exit_s, poll_once=True)
    assert runner.errors == {}
    return runner


def test_every_sample_article_becomes_one_searchable_document(
    site, kafka_settings, es_settings, es_client, tmp_path: Path
):
    feeds_file = tmp_path / "feeds.yaml"
    demo_registry(site.base_url, demo_site_root()).save(feeds_file)
    settings = PipelineSettings(
        kafka=kafka_settings,
        elasticsearch=es_settings,
        http=HttpSettings(allowed_hosts=("127.0.0.1",)),
        ingest=IngestSettings(feeds_file=feeds_file, state_dir=tmp_path / "state"),
        loop=LoopSettings(batch_size=20, linger_s=0.2),
        alert=AlertSettings(history_index=f"{es_settings.index_prefix}-alerts"),
    )
    runner = run_pipeline(settings)

    ids = expected_ids(site.base_url)
    es_client.indices.refresh(index=es_settings.alias)
    assert es_client.count(index=es_settings.alias)["count"] == len(ids)
    docs = es_client.mget(index=es_settings.alias, ids=ids)["docs"]
    assert all(doc["found"] for doc in docs)
    by_title = {doc["_source"]["title"]: doc["_source"] for doc in docs}
    for expected in expected_articles():
        doc = by_title[expected["title"]]
        assert doc["language"] == expected["language"]
        assert doc["paywalled"] == expected["paywalled"]
        for phrase in expected["body_must_contain"]:
            assert phrase in doc["body"]
        for phrase in expected["body_must_not_contain"]:
            assert phrase not in doc["body"]
    english = [d for d in by_title.values() if d["language"] == "en"]
    assert all(d["entities"]["person"] or d["entities"]["org"] or d["entities"]["location"] for d in english)
    german = [d for d in by_title.values() if d["language"] == "de"]
    # German articles go through the German pipeline shipped with newsflow (enrich/models/).
    assert not any("no_ner_model:de" in d["enrichment_notes"] for d in german)
    assert any(d["entities"]["person"] or d["entities"]["location"] for d in german)

    # The same article through two feeds (once with tracking parameters) was fetched once.
    fetched_paths = [path.split("?")[0] for method, path in site.request_log if path.startswith("/articles/")]
    assert len(fetched_paths) == len(set(fetched_paths))
    assert runner.stats["index"].total("dead_lettered") == 0
    assert runner.stats["fetch"].total("ok") == len(fetched_paths) + sum(
        1 for _, path in site.request_log if path.startswith("/amp/")
    )

    hits = search(es_client, es_settings.alias, SearchQuery(text="asylum", language="en"))
    assert hits["total"] >= 1
    assert all(hit["language"] == "en" for hit in hits["hits"])

    # A restart of the poller re-emits nothing old; replaying all messages changes nothing.
    again = run_pipeline(settings, idle_exit_s=4.0)
    assert again.stats["fetch"].total() == 0
    es_client.indices.refresh(index=es_settings.alias)
    assert es_client.count(index=es_settings.alias)["count"] == len(ids)
