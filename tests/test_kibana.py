"""Kibana saved objects: valid against the live mapping, and imported through the saved-objects API."""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterator
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr

from index.kibana import DATA_VIEW_ID, KibanaImportError, import_objects, load_objects
from index.setup import setup
from newsflow.cli import main
from newsflow.settings import ElasticsearchSettings

# --- field references -----------------------------------------------------------------------------

_KUERY_FIELD = re.compile(r"([\w.@]+)\s*:")


def _kuery_fields(search_source_json: str) -> list[str]:
    query = json.loads(search_source_json).get("query", {})
    return _KUERY_FIELD.findall(query.get("query", "")) if query.get("language") == "kuery" else []


def referenced_fields(objects: list[dict[str, Any]]) -> list[tuple[str, str, bool]]:
    """(object id, field, must be aggregatable) for every field an object names."""
    refs: list[tuple[str, str, bool]] = []
    for obj in objects:
        attrs, oid = obj["attributes"], obj["id"]
        if obj["type"] == "index-pattern":
            refs.append((oid, attrs["timeFieldName"], True))
        source = attrs.get("kibanaSavedObjectMeta", {}).get("searchSourceJSON")
        if source:
            refs.extend((oid, field, False) for field in _kuery_fields(source))
        if obj["type"] == "search":
            refs.extend((oid, column, False) for column in attrs["columns"])
            refs.extend((oid, field, True) for field, _direction in attrs["sort"])
        if obj["type"] == "visualization":
            for agg in json.loads(attrs["visState"])["aggs"]:
                if "field" in agg["params"]:
                    refs.append((oid, agg["params"]["field"], True))
    return refs


def problems(objects: list[dict[str, Any]], caps: dict[str, dict[str, Any]]) -> list[str]:
    """Fields missing from the mapping, or aggregated but not aggregatable."""
    found = []
    for oid, field, aggregated in referenced_fields(objects):
        if field not in caps:
            found.append(f"{oid}: {field} is not in the mapping")
        elif aggregated and not all(c["aggregatable"] for c in caps[field].values()):
            found.append(f"{oid}: {field} is not aggregatable")
    return found


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return load_objects()


@pytest.mark.elasticsearch
def test_saved_objects_reference_only_mapped_fields_and_aggregate_only_aggregatable_ones(
    objects, es_client, es_settings
):
    setup(es_client, es_settings)
    caps = es_client.field_caps(index=es_settings.alias, fields="*")["fields"]
    assert problems(objects, caps) == []
    # The checker is not vacuous: a text field in a terms aggregation and a made-up column are caught.
    broken = json.loads(json.dumps([o for o in objects if o["type"] in {"search", "visualization"}]))
    vis = next(o for o in broken if o["type"] == "visualization")
    state = json.loads(vis["attributes"]["visState"])
    state["aggs"][-1]["params"]["field"] = "title"
    vis["attributes"]["visState"] = json.dumps(state)
    next(o for o in broken if o["type"] == "search")["attributes"]["columns"].append("no_such_field")
    assert sorted(p.split(": ", 1)[1] for p in problems(broken, caps)) == [
        "no_such_field is not in the mapping",
        "title is not aggregatable",
    ]


def test_the_objects_the_issue_asks_for_exist_and_reference_each_other(objects):
    by_id = {o["id"]: o for o in objects}
    assert len(by_id) == len(objects)
    view = by_id[DATA_VIEW_ID]
    assert (view["type"], view["attributes"]["title"], view["attributes"]["timeFieldName"]) == (
        "index-pattern",
        "newsflow-articles",
        "@timestamp",
    )
    searches = {o["attributes"]["title"]: o for o in objects if o["type"] == "search"}
    assert _kuery_fields(
        searches["Migration"]["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"]
    ) == ["topics"]
    assert _kuery_fields(
        searches["Paywalled"]["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"]
    ) == ["paywalled"]
    (dashboard,) = [o for o in objects if o["type"] == "dashboard"]
    refs = {r["name"]: r for r in dashboard["references"]}
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    assert {p["panelRefName"] for p in panels} == set(refs)
    for ref in [*refs.values(), *(r for o in objects for r in o["references"])]:
        assert by_id[ref["id"]]["type"] == ref["type"]
    aggregated = {
        field for oid, field, agg in referenced_fields([by_id[r["id"]] for r in refs.values()]) if agg
    }
    # Over time by topic, top entities, top sources, extraction health per source.
    assert {"@timestamp", "topics", "entities.person", "entities.org", "source.domain", "quality_flags"} <= (
        aggregated
    )


# --- import through the saved-objects API ---------------------------------------------------------


class FakeKibana(ThreadingHTTPServer):
    """Kibana's ``POST /api/saved_objects/_import`` as far as newsflow uses it; records each request."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _KibanaHandler)
        self.requests: list[dict[str, Any]] = []
        self.answer: dict[str, Any] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _KibanaHandler(BaseHTTPRequestHandler):
    server: FakeKibana

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
        form = BytesParser(policy=HTTP).parsebytes(head + body)
        parts: list[dict[str, Any]] = [
            {
                "name": part.get_param("name", header="content-disposition"),
                "filename": part.get_filename(),
                "content": part.get_payload(decode=True),
            }
            for part in form.iter_parts()
        ]
        url = urlsplit(self.path)
        self.server.requests.append(
            {
                "path": url.path,
                "query": parse_qs(url.query),
                "xsrf": self.headers.get("kbn-xsrf"),
                "authorization": self.headers.get("Authorization"),
                "multipart": form.get_content_type(),
                "parts": parts,
            }
        )
        lines = parts[0]["content"].decode().splitlines() if parts else []
        answer = self.server.answer or {"success": True, "successCount": len(lines), "errors": []}
        payload = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads the recorded requests."""


@pytest.fixture
def kibana() -> Iterator[FakeKibana]:
    server = FakeKibana()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def test_import_posts_one_multipart_ndjson_file_with_the_alias_and_credentials(kibana, objects):
    secret = SecretStr("s3cret")  # a made-up credential the fake checks is passed on
    settings = ElasticsearchSettings(
        kibana_url=kibana.url, alias="news-prod", username="elastic", password=secret
    )
    report = import_objects(settings)
    assert report == {"kibana_url": kibana.url, "objects": len(objects), "imported": len(objects)}
    (request,) = kibana.requests
    assert request["path"] == "/api/saved_objects/_import"
    assert request["query"] == {"overwrite": ["true"]}
    assert request["xsrf"]  # Kibana refuses API writes without it
    assert request["authorization"] == "Basic " + base64.b64encode(b"elastic:s3cret").decode()
    assert request["multipart"] == "multipart/form-data"
    (part,) = request["parts"]
    assert part["name"] == "file" and part["filename"].endswith(".ndjson")
    uploaded = [json.loads(line) for line in part["content"].decode().splitlines()]
    assert [o["id"] for o in uploaded] == [o["id"] for o in objects]
    view = next(o for o in uploaded if o["id"] == DATA_VIEW_ID)
    assert view["attributes"]["title"] == "news-prod"  # pointed at the configured alias


def test_import_reports_objects_kibana_refused(kibana):
    kibana.answer = {
        "success": False,
        "successCount": 1,
        "errors": [{"type": "dashboard", "id": "newsflow-overview", "error": {"type": "missing_references"}}],
    }
    with pytest.raises(KibanaImportError, match="newsflow-overview"):
        import_objects(ElasticsearchSettings(kibana_url=kibana.url))


def test_kibana_import_command(kibana, monkeypatch, capsys):
    monkeypatch.setenv("NEWSFLOW_ELASTICSEARCH_KIBANA_URL", kibana.url)
    assert main(["kibana", "import", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["imported"] == len(load_objects())
    monkeypatch.delenv("NEWSFLOW_ELASTICSEARCH_KIBANA_URL")
    assert main(["kibana", "import"]) == 1
    assert "NEWSFLOW_ELASTICSEARCH_KIBANA_URL" in capsys.readouterr().err
    assert len(kibana.requests) == 1
