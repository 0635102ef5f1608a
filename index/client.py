"""Elasticsearch client and cluster capabilities, built from settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from elasticsearch import Elasticsearch

from newsflow.settings import ElasticsearchSettings


def elasticsearch_url(settings: ElasticsearchSettings) -> str:
    """The configured cluster, or the project's local node when none is configured."""
    if settings.url:
        return settings.url
    from newsflow.services import LocalServicesSettings
    from newsflow.services import elasticsearch_url as local_url

    return local_url(LocalServicesSettings())


def make_client(settings: ElasticsearchSettings) -> Elasticsearch:
    kwargs: dict[str, Any] = {
        "request_timeout": settings.request_timeout_s,
        "verify_certs": settings.verify_certs,
        "retry_on_timeout": True,
        "max_retries": 2,
    }
    if settings.ca_certs:
        kwargs["ca_certs"] = str(settings.ca_certs)
    if settings.api_key:
        kwargs["api_key"] = settings.api_key.get_secret_value()
    elif settings.username and settings.password:
        kwargs["basic_auth"] = (settings.username, settings.password.get_secret_value())
    return Elasticsearch(elasticsearch_url(settings), **kwargs)


@dataclass(frozen=True)
class Capabilities:
    """What the cluster offers; the local test distribution lacks several standard modules."""

    version: str
    modules: frozenset[str]

    @property
    def language_analyzers(self) -> bool:
        return "analysis-common" in self.modules


def capabilities(es: Elasticsearch) -> Capabilities:
    """Read modules and plugins from ``_nodes`` (``GET /`` is missing from the test distribution)."""
    nodes = es.nodes.info(metric="plugins,modules")
    modules: set[str] = set()
    version = ""
    for node in nodes["nodes"].values():
        version = node.get("version", version)
        modules.update(m["name"] for m in node.get("modules", []))
        modules.update(p["name"] for p in node.get("plugins", []))
    return Capabilities(version=version, modules=frozenset(modules))
