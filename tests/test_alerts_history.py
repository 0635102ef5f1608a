"""The history index as the claim and compare-and-set record (real Elasticsearch)."""

from __future__ import annotations

import pytest
from elasticsearch import Elasticsearch

from alerts.history import HistoryStore
from newsflow.errors import RetryableError
from newsflow.settings import ElasticsearchSettings

pytestmark = [pytest.mark.alerts, pytest.mark.elasticsearch]


def test_create_claims_once_and_updates_survive_concurrent_joins(
    es_client: Elasticsearch, es_settings: ElasticsearchSettings
):
    store = HistoryStore(es_client, f"{es_settings.index_prefix}-alerts")
    store.ensure()
    store.ensure()  # idempotent
    doc = {"doc_type": "alert", "status": "sending", "lease_owner": "a", "items": [{"article_id": "1"}]}
    mine = store.create("alert-1", doc)
    assert mine is not None
    assert store.create("alert-1", doc) is None  # the second claim loses

    joiner = store.get("alert-1")
    assert joiner is not None
    joiner.source["items"].append({"article_id": "2"})
    assert store.replace(joiner)
    assert not store.replace(mine)  # stale version: plain replace refuses

    def delivered(source: dict[str, object]) -> None:
        source["status"] = "delivered"

    store.update(mine, delivered, owner="a")  # re-read, re-applied: the join is kept
    final = store.get("alert-1")
    assert final is not None
    assert final.source["status"] == "delivered"
    assert [i["article_id"] for i in final.source["items"]] == ["1", "2"]

    thief = store.get("alert-1")
    assert thief is not None
    thief.source["lease_owner"] = "b"
    assert store.replace(thief)
    with pytest.raises(RetryableError):  # the lease changed hands: the old owner must stop
        store.update(mine, delivered, owner="a")
