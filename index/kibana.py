"""Kibana saved objects (``deploy/kibana/*.ndjson``) and their import through the saved-objects API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from newsflow.settings import ElasticsearchSettings

KIBANA_DIR = Path(__file__).resolve().parents[1] / "deploy" / "kibana"
DATA_VIEW_ID = "newsflow-articles"


class KibanaImportError(RuntimeError):
    """Kibana refused the request or some objects; the message lists what failed."""


def load_objects(directory: Path = KIBANA_DIR) -> list[dict[str, Any]]:
    """Every saved object of every ``*.ndjson`` file, in file-name order."""
    objects: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.ndjson")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    objects.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{number}: not JSON: {exc}") from exc
    if not objects:
        raise ValueError(f"no saved objects in {directory}/*.ndjson")
    return objects


def bundle(objects: list[dict[str, Any]], alias: str) -> bytes:
    """One NDJSON upload; the data view is pointed at the configured alias (the files say the default)."""
    lines = []
    for obj in objects:
        out = obj
        if obj.get("type") == "index-pattern" and obj.get("id") == DATA_VIEW_ID:
            out = {**obj, "attributes": {**obj["attributes"], "title": alias}}
        lines.append(json.dumps(out, ensure_ascii=False, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode("utf-8")


def _auth(settings: ElasticsearchSettings) -> tuple[dict[str, str], httpx.BasicAuth | None]:
    """Kibana takes the same credentials as Elasticsearch."""
    if settings.api_key:
        return {"Authorization": f"ApiKey {settings.api_key.get_secret_value()}"}, None
    if settings.username and settings.password:
        return {}, httpx.BasicAuth(settings.username, settings.password.get_secret_value())
    return {}, None


def import_objects(
    settings: ElasticsearchSettings, directory: Path = KIBANA_DIR, timeout_s: float = 30.0
) -> dict[str, Any]:
    """POST the objects to ``<kibana>/api/saved_objects/_import?overwrite=true``; re-running replaces them."""
    if not settings.kibana_url:
        raise KibanaImportError("no Kibana configured: set NEWSFLOW_ELASTICSEARCH_KIBANA_URL")
    objects = load_objects(directory)
    headers, auth = _auth(settings)
    response = httpx.post(
        f"{settings.kibana_url.rstrip('/')}/api/saved_objects/_import",
        params={"overwrite": "true"},
        headers={"kbn-xsrf": "newsflow", **headers},
        auth=auth,
        files={"file": ("newsflow.ndjson", bundle(objects, settings.alias), "application/ndjson")},
        timeout=timeout_s,
        verify=settings.verify_certs if not settings.ca_certs else str(settings.ca_certs),
    )
    if response.status_code != 200:
        raise KibanaImportError(f"Kibana answered {response.status_code}: {response.text[:500]}")
    result: dict[str, Any] = response.json()
    if not result.get("success"):
        errors = [f"{e.get('type')}/{e.get('id')}: {e.get('error')}" for e in result.get("errors", [])]
        raise KibanaImportError(f"Kibana imported {result.get('successCount', 0)} objects; failed: {errors}")
    return {
        "kibana_url": settings.kibana_url,
        "objects": len(objects),
        "imported": result.get("successCount"),
    }
