"""The versioned mapping files: the fields the issue lists, aggregatable where users aggregate, and
language subfields only where the cluster can analyse them (no server needed)."""

from __future__ import annotations

from typing import Any

import pytest

from index.client import Capabilities
from index.setup import MAPPING_VERSION, load_mapping, mapping_for

KEYWORDS = (
    "url",
    "canonical_url",
    "authors",
    "language",
    "source.domain",
    "source.name",
    "feed",
    "story_id",
    "entities.person",
    "entities.org",
    "entities.location",
    "entities.misc",
    "topics",
    "keywords",
    "quality_flags",
)


def field(mapping: dict[str, Any], path: str) -> dict[str, Any]:
    node: dict[str, Any] = {"properties": mapping["mappings"]["properties"]}
    for part in path.split("."):
        node = node["properties"][part]
    return node


@pytest.mark.parametrize("version", range(1, MAPPING_VERSION + 1))
def test_every_version_file_carries_its_number(version):
    mapping = load_mapping(version)
    assert mapping["version"] == mapping["mappings"]["_meta"]["newsflow_mapping_version"] == version
    assert mapping["mappings"]["dynamic"] == "strict"


def test_current_mapping_has_the_fields_users_filter_and_aggregate_on():
    mapping = load_mapping()
    for name in ("@timestamp", "modified_at", "ingested_at"):
        assert field(mapping, name)["type"] == "date"
    for name in ("title", "body", "description"):
        assert field(mapping, name)["type"] == "text"
    for name in KEYWORDS:
        assert field(mapping, name)["type"] == "keyword", name
    assert field(mapping, "paywalled")["type"] == "boolean"
    assert field(mapping, "revision")["type"] == "integer"
    assert field(mapping, "body_chars")["type"] == "integer"
    assert field(mapping, "topic_scores")["dynamic"] is True


def test_language_subfields_only_where_the_cluster_has_the_analyzers():
    plain = mapping_for(Capabilities(version="9.2.4", modules=frozenset()))
    assert "german" not in field(plain, "body").get("fields", {})
    full = mapping_for(Capabilities(version="9.2.4", modules=frozenset({"analysis-common"})))
    for name in ("title", "body", "description"):
        subfields = field(full, name)["fields"]
        assert subfields["german"] == {"type": "text", "analyzer": "german"}
        assert subfields["english"] == {"type": "text", "analyzer": "english"}
    assert field(full, "title")["fields"]["raw"]["type"] == "keyword"
    assert "german" not in field(load_mapping(), "body").get("fields", {})  # the file itself is untouched
