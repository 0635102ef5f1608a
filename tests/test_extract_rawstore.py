"""The raw HTML archive: what the fetch stage keeps, and re-extraction from it (CLI and Kafka)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from ingest.http import HttpClient
from ingest.rawstore import RawStore
from ingest.stage import FetchStage, article_from_html
from ingest.urls import article_id, canonicalize_url
from newsflow.cli import main
from newsflow.demo.server import SiteServer, demo_site_root
from newsflow.schemas import Article, LinkMessage
from newsflow.settings import HttpSettings, IngestSettings, KafkaSettings

ARTICLE = "articles/en-eu-asylum-pact.html"


@pytest.fixture
def server() -> Iterator[SiteServer]:
    with SiteServer(demo_site_root()) as site:
        yield site


@pytest.fixture
def http() -> Iterator[HttpClient]:
    with HttpClient(HttpSettings(allowed_hosts=("127.0.0.1",))) as client:
        yield client


def link_to(url: str, revision: int = 1) -> LinkMessage:
    canonical = canonicalize_url(url)
    return LinkMessage(
        url=url,
        canonical_url=canonical,
        article_id=article_id(canonical),
        feed_url="https://feeds.example/world.xml",
        publisher="harbourtimes",
        language_hint="en",
        discovered_at=datetime.now(UTC),
        revision=revision,
    )


def fetch_into(store: RawStore, server: SiteServer, http: HttpClient, revision: int = 1) -> Article:
    return FetchStage(http, raw_store=store).process(link_to(server.url(ARTICLE), revision))


def test_the_archive_is_off_unless_configured(tmp_path: Path):
    assert RawStore.from_settings(IngestSettings()) is None
    store = RawStore.from_settings(IngestSettings(raw_html_dir=tmp_path, raw_html_compresslevel=9))
    assert store is not None
    assert (store.root, store.compresslevel) == (tmp_path, 9)


def test_fetch_stage_archives_the_served_bytes_gzip_compressed(
    tmp_path: Path, server: SiteServer, http: HttpClient
):
    store = RawStore(tmp_path)
    article = fetch_into(store, server, http)
    [version] = store.versions(article.article_id)
    served = httpx.get(server.url(ARTICLE)).content
    assert version.html() == served
    assert version.path.stat().st_size < len(served)
    assert gzip.decompress(version.path.read_bytes()) == served  # a plain .gz anyone can read
    assert (version.url, version.body_hash, version.link.revision) == (article.url, article.body_hash, 1)
    assert not list(tmp_path.rglob(".tmp-*"))


def test_an_unchanged_refetch_is_stored_once_and_a_changed_page_again(
    tmp_path: Path, server: SiteServer, http: HttpClient
):
    store = RawStore(tmp_path)
    first = fetch_into(store, server, http)
    fetch_into(store, server, http, revision=2)
    assert len(store.versions(first.article_id)) == 1

    link = link_to(server.url(ARTICLE), revision=2)
    changed = first.model_copy(update={"fetched_at": first.fetched_at + timedelta(hours=1)})
    store.put(changed, link, b"<html>changed</html>", "utf-8")
    versions = store.versions(first.article_id)
    assert [v.html() for v in versions][-1] == b"<html>changed</html>"
    assert [page.article_id for page in store.latest()] == [first.article_id]
    assert next(store.latest()).link.revision == 2


def test_a_recheck_link_is_fetched_into_a_recheck_article(server: SiteServer, http: HttpClient):
    link = link_to(server.url(ARTICLE), revision=2).model_copy(update={"recheck": True})
    article = FetchStage(http).process(link)
    assert (article.recheck, article.revision) == (True, 2)
    assert not FetchStage(http).process(link_to(server.url(ARTICLE))).recheck


def test_reextracting_an_archived_page_rebuilds_the_same_article(
    tmp_path: Path, server: SiteServer, http: HttpClient
):
    store = RawStore(tmp_path)
    article = fetch_into(store, server, http, revision=3)
    raw = next(store.latest())
    again = article_from_html(raw.link, raw.url, raw.html(), raw.charset, raw.fetched_at)
    assert again == article


def test_reextract_command_reports_changed_bodies(
    tmp_path: Path, server: SiteServer, http: HttpClient, capsys: pytest.CaptureFixture[str]
):
    store = RawStore(tmp_path)
    article = fetch_into(store, server, http)
    assert main(["reextract", "--dir", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["pages"], report["extracted"], report["body_changed"], report["published"]) == (1, 1, 0, 0)

    # An archive written by an older extractor: its recorded body hash no longer matches.
    [sidecar] = tmp_path.rglob("*.json")
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**meta, "body_hash": "0" * 64}))
    assert main(["reextract", "--dir", str(tmp_path), "--id", article.article_id, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["body_changed"] == 1
    assert main(["reextract", "--dir", str(tmp_path), "--id", "f" * 64, "--json"]) == 1


def test_reextract_without_an_archive_says_how_to_configure_one(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("NEWSFLOW_INGEST_RAW_HTML_DIR", raising=False)
    assert main(["reextract"]) == 2
    assert "NEWSFLOW_INGEST_RAW_HTML_DIR" in capsys.readouterr().err


@pytest.mark.kafka
def test_reextract_publish_sends_the_articles_to_kafka(
    tmp_path: Path,
    server: SiteServer,
    http: HttpClient,
    kafka_settings: KafkaSettings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    from newsflow.kafka_io import make_consumer
    from newsflow.settings import LoopSettings

    article = fetch_into(RawStore(tmp_path), server, http, revision=2)
    monkeypatch.setenv("NEWSFLOW_KAFKA_TOPIC_PREFIX", kafka_settings.topic_prefix)
    assert main(["reextract", "--dir", str(tmp_path), "--publish", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["published"] == 1

    consumer = make_consumer(kafka_settings, LoopSettings(), "check", [kafka_settings.topic("articles")])
    try:
        records = [r for batch in consumer.poll(timeout_ms=10_000).values() for r in batch]
        for _ in range(5):
            if records:
                break
            records = [r for batch in consumer.poll(timeout_ms=2_000).values() for r in batch]
    finally:
        consumer.close()
    [record] = records
    published = Article.model_validate_json(record.value)
    assert record.key == article.article_id.encode()
    assert (published.body_hash, published.revision) == (article.body_hash, 2)


def test_the_archive_is_kept_exactly_when_the_setting_is_set(
    tmp_path: Path, server: SiteServer, http: HttpClient, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("NEWSFLOW_INGEST_RAW_HTML_DIR", str(tmp_path))
    store = RawStore.from_settings(IngestSettings())
    assert store is not None
    article = FetchStage(http, store).process(link_to(server.url(ARTICLE)))
    assert len(RawStore(tmp_path).versions(article.article_id)) == 1
    monkeypatch.delenv("NEWSFLOW_INGEST_RAW_HTML_DIR")
    assert RawStore.from_settings(IngestSettings()) is None
    assert FetchStage(http).raw_store is None


def test_an_unwritable_archive_does_not_stop_the_article(
    tmp_path: Path, server: SiteServer, http: HttpClient, caplog: pytest.LogCaptureFixture
):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    article = FetchStage(http, raw_store=RawStore(blocker / "archive")).process(link_to(server.url(ARTICLE)))
    assert article.body
    assert "raw html not archived" in caplog.text
