"""The ``newsflow`` command as users run it: a subprocess, one JSON object on stdout with --json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from newsflow.demo.server import demo_site_root
from newsflow.schemas import Article

ROOT = Path(__file__).resolve().parents[1]


def newsflow(*args: str, timeout: float = 300) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSFLOW_")}
    done = subprocess.run(
        [sys.executable, "-m", "newsflow.cli", *args, "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    result: dict[str, Any] = json.loads(lines[0])
    return result


def test_extract_prints_the_wire_record(tmp_path: Path):
    page = tmp_path / "page.html"
    page.write_bytes((demo_site_root() / "articles" / "en-eu-asylum-pact.html").read_bytes())
    record = newsflow("extract", str(page), "--url", "https://harbourtimes.example/world/eu-asylum-pact")
    article = Article.model_validate(record)
    assert article.title.startswith("EU ministers agree")
    assert article.language == "en"


def test_feeds_list_reads_the_registry():
    result = newsflow("feeds", "list", "--file", "config/feeds.yaml")
    assert {feed["publisher"] for feed in result["feeds"]} >= {"stern.de", "spiegel.de", "bbc.co.uk"}


@pytest.mark.kafka
@pytest.mark.elasticsearch
def test_services_status_demo_and_search(local_services: None):
    status = newsflow("services", "status")
    assert {s["name"]: s["running"] for s in status["services"]} == {"kafka": True, "elasticsearch": True}
    assert newsflow("services", "up")["started"] == []  # idempotent: already running

    report = newsflow("demo", "--timeout", "240", timeout=400)
    assert report["articles_expected"] >= 20
    assert report["articles_indexed"] == report["articles_expected"]
    assert report["errors"] == {}
    assert set(report["stages"]) == {"poll", "fetch", "enrich", "index", "alert"}

    hits = newsflow("search", "asylum", "--lang", "en")
    assert hits["total"] >= 1
    assert {"url", "title", "@timestamp", "topics", "entities"} <= set(hits["hits"][0])
    setup = newsflow("index", "setup")
    assert setup["created_index"] is False
