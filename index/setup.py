"""Idempotent index set-up: the versioned mapping as a template, a versioned index, the alias.

An alias still on an older mapping version is migrated (``index.migrate``: copy, atomic switch,
catch-up), so starting a newer indexer or running ``newsflow index setup`` never points the alias
at an empty index.

Why one index per mapping version and no time partitioning: an article's ``@timestamp`` can change
with a revision, and a time-partitioned layout would then hold two copies of it behind the alias
(or need a delete in another index, which is not atomic with the write). One index keeps "one
document per article" a property of ``_id`` alone; at news volumes (10^5-10^6 articles a month) a
single index with one primary shard stays well within Elasticsearch's sizing guidance.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from elasticsearch import Elasticsearch

from index.client import Capabilities, capabilities
from index.migrate import MigrationReport, Upgrade, switch_alias
from index.stage import entity_surface, extraction_health
from newsflow.settings import ElasticsearchSettings

MAPPING_VERSION = 3
LANGUAGE_ANALYZERS = {"german": "german", "english": "english"}
TEXT_FIELDS = ("title", "body", "description")
WANTED_MODULES = (
    "analysis-common",
    "percolator",
    "lang-painless",
    "reindex",
    "mapper-extras",
    "ingest-common",
)
_VERSION_SUFFIX = re.compile(r"-v(\d+)$")


def _to_v2(doc: dict[str, Any]) -> dict[str, Any]:
    """v1 documents lack the extraction-health fields; v1 wrote ``@timestamp`` = fetch time when the
    page had no published date, which is how a missing date is recognised."""
    if "body_chars" in doc:
        return doc
    return {
        **doc,
        **extraction_health(
            doc.get("body") or "",
            doc.get("description"),
            doc.get("authors") or [],
            doc.get("@timestamp") != doc.get("ingested_at"),
        ),
    }


def _to_v3(doc: dict[str, Any]) -> dict[str, Any]:
    """v2 documents keep every entity's surface forms in the (unindexed) ``entity_details``."""
    if "entity_surface" in doc:
        return doc
    return {**doc, "entity_surface": entity_surface(doc.get("entity_details") or [])}


# Document upgrades, keyed by the version they produce; a migration applies each step in turn.
UPGRADES: dict[int, Upgrade] = {2: _to_v2, 3: _to_v3}


@dataclass(frozen=True)
class SetupReport:
    index: str
    alias: str
    mapping_version: int
    created_index: bool
    created_alias: bool
    language_analyzers: bool
    missing_modules: tuple[str, ...]
    migration: MigrationReport | None = None

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
            "migration": self.migration.as_dict() if self.migration else None,
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


def ensure_index(
    es: Elasticsearch, settings: ElasticsearchSettings, caps: Capabilities, version: int
) -> bool:
    """Put the version's template and create its index; True if the index was created now."""
    mapping = mapping_for(caps, version)
    name = index_name(settings, version)
    es.indices.put_index_template(
        name=name,
        index_patterns=[name],
        template={"settings": mapping["settings"], "mappings": mapping["mappings"]},
        priority=100 + version,
        meta={"newsflow_mapping_version": version},
    )
    if es.indices.exists(index=name):
        return False
    es.options(ignore_status=400).indices.create(index=name)  # 400: a concurrent set-up created it
    return True


def live_index(es: Elasticsearch, alias: str) -> tuple[str, int] | None:
    """The index the alias writes to and its mapping version; None when there is no alias yet."""
    if not es.indices.exists_alias(name=alias):
        return None
    aliases = es.indices.get_alias(name=alias)
    names = [n for n, meta in aliases.items() if meta["aliases"][alias].get("is_write_index", True)]
    if len(names) != 1:
        raise RuntimeError(f"alias {alias} has no single write index: {sorted(aliases)}")
    name = names[0]
    meta = es.indices.get_mapping(index=name)[name]["mappings"].get("_meta", {})
    version = meta.get("newsflow_mapping_version")
    if version is None:
        match = _VERSION_SUFFIX.search(name)
        if not match:
            raise RuntimeError(f"alias {alias} points at {name}, which is not a newsflow index")
        version = match.group(1)
    return name, int(version)


def migrate(
    es: Elasticsearch,
    settings: ElasticsearchSettings,
    to_version: int = MAPPING_VERSION,
    batch_size: int = 500,
    caps: Capabilities | None = None,
) -> MigrationReport | None:
    """Move the alias to ``to_version`` with zero downtime; None when it is there already."""
    live = live_index(es, settings.alias)
    if live is None:
        raise RuntimeError(f"alias {settings.alias} does not exist; run `newsflow index setup` first")
    source, version = live
    if version == to_version:
        return None
    if version > to_version:
        raise RuntimeError(f"alias {settings.alias} is on mapping v{version}, newer than v{to_version}")
    steps = [UPGRADES[v] for v in range(version + 1, to_version + 1) if v in UPGRADES]

    def upgrade(doc: dict[str, Any]) -> dict[str, Any]:
        for step in steps:
            doc = step(doc)
        return doc

    ensure_index(es, settings, caps or capabilities(es), to_version)
    return switch_alias(
        es, settings.alias, source, index_name(settings, to_version), upgrade, batch_size=batch_size
    )


def setup(es: Elasticsearch, settings: ElasticsearchSettings) -> SetupReport:
    """Template, index and alias at ``MAPPING_VERSION``; migrates an alias on an older version."""
    caps = capabilities(es)
    name = index_name(settings)
    created_index = ensure_index(es, settings, caps, MAPPING_VERSION)
    created_alias = False
    migration = None
    if live_index(es, settings.alias) is None:
        es.indices.update_aliases(
            actions=[{"add": {"index": name, "alias": settings.alias, "is_write_index": True}}]
        )
        created_alias = True
    else:
        migration = migrate(es, settings, MAPPING_VERSION, caps=caps)
    return SetupReport(
        index=name,
        alias=settings.alias,
        mapping_version=MAPPING_VERSION,
        created_index=created_index,
        created_alias=created_alias,
        language_analyzers=caps.language_analyzers,
        missing_modules=tuple(m for m in WANTED_MODULES if m not in caps.modules),
        migration=migration,
    )
