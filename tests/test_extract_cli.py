"""``newsflow extract`` and ``newsflow eval extraction`` as users run them (one JSON object)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from ingest.urls import article_id
from newsflow.cli import main
from newsflow.demo.server import PLACEHOLDER, demo_site_root
from newsflow.schemas import Article

BASE = "https://harbourtimes.example"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main([*args, "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    result: dict[str, Any] = json.loads(lines[0])
    return result


def demo_page(tmp_path: Path, name: str) -> Path:
    page = tmp_path / name
    page.write_bytes((demo_site_root() / "articles" / name).read_bytes().replace(PLACEHOLDER, BASE.encode()))
    return page


def test_extract_file_prints_the_wire_article_with_the_pages_canonical_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    page = demo_page(tmp_path, "en-eu-asylum-pact.html")
    record = run(capsys, "extract", str(page), "--url", f"{BASE}/world/eu-asylum-pact?utm_source=x")
    article = Article.model_validate(record)
    assert article.canonical_url == f"{BASE}/articles/en-eu-asylum-pact.html"
    assert article.article_id == article_id(article.canonical_url)
    assert article.url == f"{BASE}/world/eu-asylum-pact?utm_source=x"
    assert article.source_domain == "harbourtimes.example"
    assert article.body and article.title


def test_extract_file_without_url_uses_the_declared_canonical(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    record = run(capsys, "extract", str(demo_page(tmp_path, "de-plus-dorfschule.html")))
    assert record["canonical_url"] == f"{BASE}/articles/de-plus-dorfschule.html"
    assert record["paywalled"] is True


def _gold_set(folder: Path) -> Path:
    html = folder / "html"
    html.mkdir()
    words = "the ferry to the island leaves every morning at six and returns at noon"
    pages = {
        "good": (
            f"<html><body><article><h1>Ferry</h1><p>{words}.</p><p>{words} again.</p></article></body></html>"
        ),
        "empty": "<html><body><nav>Home</nav></body></html>",
    }
    for name, text in pages.items():
        (html / f"{name}.html.gz").write_bytes(gzip.compress(text.encode()))
    gold = folder / "gold.json"
    gold.write_text(
        json.dumps({name: {"articleBody": f"{words}. {words} again.", "url": None} for name in pages})
    )
    return gold


def test_eval_extraction_scores_a_gold_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    gold = _gold_set(tmp_path)
    report = run(capsys, "eval", "extraction", "--gold", str(gold), "--html", str(tmp_path / "html"))
    assert report["pages"] == 2
    assert report["failed"] == {"no_main_content": 1}
    assert report["worst"][0]["page"] == "empty"
    assert report["worst"][1]["f1"] == 1.0
    assert report["recall"] == 0.5
    assert {"precision", "f1"} <= report.keys()


def test_eval_extraction_needs_a_data_set(capsys: pytest.CaptureFixture[str]):
    assert main(["eval", "extraction", "--gold", "x.json"]) == 2
    assert "--fundus" in capsys.readouterr().err


def test_eval_extraction_on_fundus_fixtures(shared_data: Path, capsys: pytest.CaptureFixture[str]):
    folder = shared_data / "extraction" / "fundus-public" / "de"
    report = run(capsys, "eval", "extraction", "--fundus", str(folder), "--worst", "2")
    assert report["pages"] == len(list(folder.glob("*.html.gz")))
    assert len(report["worst"]) == 2
    assert report["f1"] > 0.9
    assert set(report["metadata"]) == {"title", "authors", "published"}
    assert all(0.0 <= share <= 1.0 for share in report["metadata"].values())


def test_scrapinghub_quality_does_not_regress(shared_data: Path, capsys: pytest.CaptureFixture[str]):
    """Guards the general techniques measured in the README (F1 0.970) against regressions."""
    root = shared_data / "extraction" / "scrapinghub"
    report = run(
        capsys, "eval", "extraction", "--gold", str(root / "ground-truth.json"), "--html", str(root / "html")
    )
    assert report["pages"] == 181
    assert report["failed"] == {}
    assert report["f1"] >= 0.965


def test_extract_url_fetches_through_the_guarded_client(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    from newsflow.demo.server import SiteServer

    with SiteServer(demo_site_root()) as site:
        url = site.url("articles/en-eu-asylum-pact.html")
        monkeypatch.delenv("NEWSFLOW_HTTP_ALLOWED_HOSTS", raising=False)
        assert main(["extract", url, "--json"]) == 1  # loopback is refused by default (SSRF guard)
        assert "blocked_address" in capsys.readouterr().err
        monkeypatch.setenv("NEWSFLOW_HTTP_ALLOWED_HOSTS", '["127.0.0.1"]')
        article = Article.model_validate(run(capsys, "extract", url))
    assert article.url == url
    assert article.canonical_url == url
    assert article.title.startswith("EU ministers agree")
