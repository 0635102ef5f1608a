"""Shared fixtures: the real local servers (started once per session, only if not running and not
configured externally) and per-test topic/alias names so tests never see each other's data."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from newsflow.settings import ElasticsearchSettings, KafkaSettings

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def local_services() -> Iterator[None]:
    """Start local Kafka/Elasticsearch unless external clusters are configured; stop only what we started."""
    from newsflow.cli import ensure_local_services
    from newsflow.services import LocalServices

    started = ensure_local_services(kafka=True, elasticsearch=True)
    yield
    if started:
        LocalServices().down(started)


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def kafka_settings(local_services: None, unique: str) -> KafkaSettings:
    return KafkaSettings(topic_prefix=f"test-{unique}.", group_prefix=f"test-{unique}", partitions=2)


@pytest.fixture
def es_settings(local_services: None, unique: str) -> ElasticsearchSettings:
    return ElasticsearchSettings(alias=f"test-{unique}-articles", index_prefix=f"test-{unique}-articles")


@pytest.fixture
def es_client(es_settings: ElasticsearchSettings) -> Iterator[Elasticsearch]:
    from index.client import make_client

    client = make_client(es_settings)
    yield client
    # Deletion needs concrete names: wildcards are refused (action.destructive_requires_name).
    for name in client.indices.get(index=f"{es_settings.index_prefix}-*", allow_no_indices=True):
        client.indices.delete(index=name)
    templates = client.options(ignore_status=404).indices.get_index_template(
        name=f"{es_settings.index_prefix}-*"
    )
    for template in templates.get("index_templates", []):
        client.indices.delete_index_template(name=template["name"])
    client.close()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.exists():
        pytest.skip(f"reference data not found at {SHARED}")
    return SHARED
