"""Idempotent index set-up: the versioned mapping as a template, a versioned index, the alias."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from elasticsearch import Elasticsearch

from index.client import Capabilities, capabilities
from newsflow.settings import ElasticsearchSettings

MAPPING_VERSION = 1
LANGUAGE_ANALYZERS = {"german": "german", "english": "english"}
TEXT_FIELDS = ("title", "body", "description")


@dataclass(frozen=True)
class SetupReport:
    index: str
    alias: str
    mapping_version: int
    created_index: bool
    created_alias: bool
    language_analyzers: bool
    missing_modules: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "alias": self.alias,
            "mapping_version": self.mapping_version,
            "created_index": self.created_index,
            "created_alias": self.created_alias,
            "text_analysis": "per-language (german, english) + standard"
            if self.language_analyzers
            else "standard only (cluster lacks analysis-common)",
            "missing_modules": list(self.missing_modules),
        }


def load_mapping(version: int = MAPPING_VERSION) -> dict[str, Any]:
    text = resources.files("index").joinpath(f"mappings/articles.v{version}.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def mapping_for(caps: Capabilities, version: int = MAPPING_VERSION) -> dict[str, Any]:
    """The mapping file, plus language subfields where the cluster can analyse them."""
    mapping = copy.deepcopy(load_mapping(version))
    if caps.language_analyzers:
        props = mapping["mappings"]["properties"]
        for field in TEXT_FIELDS:
            sub = props[field].setdefault("fields", {})
            for name, analyzer in LANGUAGE_ANALYZERS.items():
                sub[name] = {"type": "text", "analyzer": analyzer}
    return mapping


def index_name(settings: ElasticsearchSettings, version: int = MAPPING_VERSION) -> str:
    return f"{settings.index_prefix}-v{version}"


def setup(es: Elasticsearch, settings: ElasticsearchSettings) -> SetupReport:
    caps = capabilities(es)
    mapping = mapping_for(caps)
    name = index_name(settings)
    es.indices.put_index_template(
        name=f"{settings.index_prefix}-v{MAPPING_VERSION}",
        index_patterns=[name],
        template={"settings": mapping["settings"], "mappings": mapping["mappings"]},
        priority=100 + MAPPING_VERSION,
        meta={"newsflow_mapping_version": MAPPING_VERSION},
    )
    created_index = False
    if not es.indices.exists(index=name):
        es.indices.create(index=name)
        created_index = True
    created_alias = False
    if not es.indices.exists_alias(name=settings.alias, index=name):
        actions: list[dict[str, Any]] = []
        if es.indices.exists_alias(name=settings.alias):
            for old in es.indices.get_alias(name=settings.alias):
                actions.append({"remove": {"index": old, "alias": settings.alias}})
        actions.append({"add": {"index": name, "alias": settings.alias, "is_write_index": True}})
        es.indices.update_aliases(actions=actions)
        created_alias = True
    wanted = ("analysis-common", "percolator", "lang-painless", "reindex", "mapper-extras", "ingest-common")
    return SetupReport(
        index=name,
        alias=settings.alias,
        mapping_version=MAPPING_VERSION,
        created_index=created_index,
        created_alias=created_alias,
        language_analyzers=caps.language_analyzers,
        missing_modules=tuple(m for m in wanted if m not in caps.modules),
    )
