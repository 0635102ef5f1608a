"""Schema evolution on the real Elasticsearch: v1 -> current (v3) with writes and searches going on."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from index.client import capabilities
from index.migrate import switch_alias
from index.search import SearchQuery, search
from index.setup import MAPPING_VERSION, ensure_index, index_name, live_index, migrate, setup
from index.stage import ElasticsearchBulkSink, IndexAction, IndexStage
from newsflow.cli import main
from tests.test_index_es import enriched

pytestmark = pytest.mark.elasticsearch

NOT_IN_V1 = ("body_chars", "quality_flags", "entity_surface")


def v1_setup(es, settings) -> str:
    """What `index setup` of the v1 code left behind: template, index, alias."""
    ensure_index(es, settings, capabilities(es), 1)
    name = index_name(settings, 1)
    es.indices.update_aliases(
        actions=[{"add": {"index": name, "alias": settings.alias, "is_write_index": True}}]
    )
    return name


def v1_action(n: int, revision: int = 1, **article: Any) -> IndexAction:
    """A document as the v1 indexer wrote it (v1 is strict: no later fields)."""
    action = IndexStage().process(enriched(n, revision=revision, **article))
    document = {k: v for k, v in action.document.items() if k not in NOT_IN_V1}
    return IndexAction(action.doc_id, action.version, document)


def test_setup_migrates_an_alias_on_v1_and_upgrades_old_documents(es_client, es_settings):
    source = v1_setup(es_client, es_settings)
    sink = ElasticsearchBulkSink(es_client, es_settings.alias, refresh=True)
    assert sink.write([v1_action(n) for n in range(30)]) == []
    assert sink.write([v1_action(1, revision=2, title="Second version")]) == []

    report = setup(es_client, es_settings)

    assert report.migration is not None
    assert (report.migration.source, report.migration.target) == (source, index_name(es_settings))
    assert report.migration.copied == 30
    assert report.migration.source_count == report.migration.target_count == 30
    assert live_index(es_client, es_settings.alias) == (index_name(es_settings), MAPPING_VERSION)
    assert list(es_client.indices.get_alias(name=es_settings.alias)) == [index_name(es_settings)]
    doc = es_client.get(index=es_settings.alias, id=f"{1:032x}")
    assert (doc["_version"], doc["_source"]["title"]) == (2, "Second version")
    # Upgraded on the way: the fixture's articles have a date but no authors or description.
    assert doc["_source"]["body_chars"] == len(doc["_source"]["body"])
    assert set(doc["_source"]["quality_flags"]) == {"no_authors", "no_description", "short_body"}
    # ... and the v3 surface forms come from the stored entity details.
    assert doc["_source"]["entity_surface"]["person"] == ["Biden"]
    # Versions survive the copy: an old revision still cannot overwrite the migrated newer one.
    stale = sink.write([IndexStage().process(enriched(1, revision=1))])
    assert [e.reason for _, e in stale] == ["stale_revision"]
    assert setup(es_client, es_settings).migration is None  # idempotent
    assert migrate(es_client, es_settings) is None


def test_migration_loses_no_write_and_no_search_fails_during_the_switch(es_client, es_settings):
    """An indexer and a searcher run throughout; afterwards every write is in the new index."""
    v1_setup(es_client, es_settings)
    sink = ElasticsearchBulkSink(es_client, es_settings.alias)
    for start in range(0, 3000, 500):
        assert sink.write([v1_action(n) for n in range(start, start + 500)]) == []
    es_client.indices.refresh(index=es_settings.alias)
    stop = threading.Event()
    failures: list[object] = []
    totals: list[int] = []
    written: dict[int, int] = {}  # article -> newest revision written

    def searcher() -> None:
        while not stop.is_set():
            try:
                totals.append(search(es_client, es_settings.alias, SearchQuery(text="article"))["total"])
            except Exception as exc:  # noqa: BLE001 - any failure is what this test counts
                failures.append(exc)

    def indexer() -> None:
        # New articles and new revisions of old ones, shaped for v1 so they fit whichever index
        # the alias writes to at that moment.
        n = 0
        while not stop.is_set() and n < 2500:
            batch = [v1_action(3000 + n + i) for i in range(20)]
            batch += [v1_action(n + i, revision=2, title=f"Revised {n + i}") for i in range(20)]
            failures.extend(sink.write(batch))
            written.update({3000 + n + i: 1 for i in range(20)} | {n + i: 2 for i in range(20)})
            n += 20
            time.sleep(0.01)

    threads = [threading.Thread(target=searcher), threading.Thread(target=indexer)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    try:
        report = migrate(es_client, es_settings, batch_size=200)
        time.sleep(0.5)  # writes and searches go on against the new index
    finally:
        stop.set()
        for thread in threads:
            thread.join()

    assert report is not None
    assert failures == []
    assert len(totals) > 10 and min(totals) >= 3000
    assert report.copied > 0 and written
    es_client.indices.refresh(index=index_name(es_settings))
    expected = {n: written.get(n, 1) for n in range(max(written) + 1)}
    response = es_client.search(index=es_settings.alias, size=10_000, version=True, source=False)
    assert {int(hit["_id"], 16): hit["_version"] for hit in response["hits"]["hits"]} == expected
    assert es_client.count(index=es_settings.alias)["count"] == len(expected)


def test_catch_up_copies_what_reached_the_old_index_just_before_the_switch(
    es_client, es_settings, monkeypatch
):
    """A write routed to the old index right before the alias moves is carried over afterwards."""
    source = v1_setup(es_client, es_settings)
    target = index_name(es_settings, 2)
    ensure_index(es_client, es_settings, capabilities(es_client), 2)
    sink = ElasticsearchBulkSink(es_client, source)
    assert sink.write([v1_action(n) for n in range(10)]) == []
    switch = es_client.indices.update_aliases

    def racing_switch(**kwargs: object) -> object:
        assert (
            sink.write([v1_action(n) for n in range(10, 15)] + [v1_action(0, revision=3, title="late")]) == []
        )
        return switch(**kwargs)

    monkeypatch.setattr(es_client.indices, "update_aliases", racing_switch)
    report = switch_alias(
        es_client, es_settings.alias, source, target, lambda d: d, batch_size=4, settle_s=0.05
    )

    assert (report.copied, report.caught_up) == (10, 6)
    assert report.source_count == report.target_count == 15
    assert es_client.get(index=es_settings.alias, id=f"{0:032x}")["_source"]["title"] == "late"


def test_index_migrate_command(es_client, es_settings, monkeypatch, capsys):
    monkeypatch.setenv("NEWSFLOW_ELASTICSEARCH_ALIAS", es_settings.alias)
    monkeypatch.setenv("NEWSFLOW_ELASTICSEARCH_INDEX_PREFIX", es_settings.index_prefix)
    v1_setup(es_client, es_settings)
    assert ElasticsearchBulkSink(es_client, es_settings.alias).write([v1_action(n) for n in range(7)]) == []

    assert main(["index", "migrate", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["migrated"], report["copied"], report["target_count"]) == (True, 7, 7)
    assert report["target"] == index_name(es_settings)
    assert main(["index", "migrate", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"migrated": False, "alias": es_settings.alias}
    assert main(["index", "setup", "--json"]) == 0
    setup_report = json.loads(capsys.readouterr().out)
    assert (setup_report["created_index"], setup_report["migration"]) == (False, None)
