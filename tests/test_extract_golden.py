"""Golden-file extraction tests: each sample page against its hand-written expectations
(``newsflow/demo/site/expected.json``): title, language, authors, date, paywall flag, body phrases
that must be there and page furniture that must not."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from ingest.extract import ExtractionFailed, decode_html, extract
from newsflow.demo.server import PLACEHOLDER, demo_site_root

ROOT = demo_site_root()
BASE = "http://127.0.0.1:8765"
EXPECTED: list[dict[str, Any]] = json.loads((ROOT / "expected.json").read_text(encoding="utf-8"))["articles"]


def page(path: str) -> bytes:
    return (ROOT / path).read_bytes().replace(PLACEHOLDER, BASE.encode())


@pytest.mark.parametrize("expected", EXPECTED, ids=[e["path"] for e in EXPECTED])
def test_sample_page_extracts_as_expected(expected: dict[str, Any]):
    article = extract(page(expected.get("feed_path", expected["path"])), url=f"{BASE}/{expected['path']}")
    assert article.title == expected["title"]
    assert article.language == expected["language"]
    assert list(article.authors) == expected["authors"]
    assert article.published_at == datetime.fromisoformat(expected["published"])
    assert article.paywalled is expected["paywalled"]
    assert article.canonical_url == f"{BASE}/{expected['path']}"
    for phrase in expected["body_must_contain"]:
        assert phrase in article.body
    for phrase in expected["body_must_not_contain"]:
        assert phrase not in article.body, f"boilerplate leaked: {phrase!r}"


def test_undeclared_latin1_is_decoded_from_the_meta_charset():
    raw = page("articles/de-weinlese-mosel.html")
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    text = decode_html(raw)
    assert "Mosel" in text
    assert "\ufffd" not in text


def test_wrong_declared_charset_does_not_crash_and_utf8_wins_without_one():
    utf8 = "<html><body><p>Größere Änderungen</p></body></html>".encode()
    assert "Größere" in decode_html(utf8)
    assert decode_html(utf8, "no-such-charset").startswith("<html>")


@pytest.mark.parametrize(
    ("html", "reason"),
    [
        (b"", "empty_document"),
        (b"   \n  ", "empty_document"),
        (b"<html><head><title>x</title></head><body><nav>Home</nav></body></html>", "no_main_content"),
        (b"%PDF-1.7 binary \x00\x01\x02", "not_html"),
    ],
)
def test_pages_without_an_article_fail_with_a_reason(html: bytes, reason: str):
    with pytest.raises(ExtractionFailed) as failure:
        extract(html, url="https://example.org/x")
    assert failure.value.reason == reason
