"""``newsflow feeds ...`` as users run it (a subprocess, --json), and OPML import/export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from ingest.feeds import FeedRegistry, FeedSpec
from ingest.opml import OpmlError, parse_opml, to_opml
from ingest.state import FeedState, StateStore
from newsflow.demo.server import SiteServer, demo_site_root

ROOT = Path(__file__).resolve().parents[1]


def newsflow(*args: str, env: dict[str, str] | None = None, expect: int = 0) -> dict[str, Any]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NEWSFLOW_")}
    done = subprocess.run(
        [sys.executable, "-m", "newsflow.cli", *args, "--json"],
        cwd=ROOT,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == expect, done.stderr[-2000:]
    if expect == 2:  # a usage error: a message on stderr, nothing on stdout
        assert not done.stdout and done.stderr
        return {}
    [line] = done.stdout.strip().splitlines()
    result: dict[str, Any] = json.loads(line)
    return result


@pytest.fixture
def site() -> Iterator[SiteServer]:
    with SiteServer(demo_site_root()) as server:
        yield server


def test_opml_round_trips_a_registry():
    registry = FeedRegistry(
        feeds=(
            FeedSpec(url="https://a.example/rss", publisher="A & Söhne", language="de"),
            FeedSpec(
                url="https://b.example/news.xml",
                kind="news-sitemap",
                publisher="B",
                min_interval_s=30,
                enabled=False,
            ),
            FeedSpec(url="https://c.example/atom", kind="atom", publisher="C", max_interval_s=7200),
        )
    )
    assert FeedRegistry(feeds=tuple(parse_opml(to_opml(registry.feeds)))) == registry


def test_opml_from_feed_readers_nests_folders_and_lacks_our_fields():
    document = b"""<?xml version="1.0"?>
<opml version="1.0"><head><title>Reader export</title></head><body>
  <outline text="News" title="News">
    <outline type="rss" text="Tagesschau" xmlUrl="https://www.tagesschau.de/xml/rss2/" htmlUrl="https://www.tagesschau.de/"/>
    <outline text="Tech"><outline title="Heise" type="atom" xmlUrl="https://www.heise.de/rss/heise-atom.xml"/></outline>
  </outline>
  <outline text="a folder without feeds"/>
  <outline text="local file" xmlUrl="file:///etc/passwd"/>
</body></opml>"""
    feeds = parse_opml(document)
    assert [(f.publisher, f.kind) for f in feeds] == [("Tagesschau", "rss"), ("Heise", "atom")]
    with pytest.raises(OpmlError):
        parse_opml(b"<html><body>not opml</body></html>")
    with pytest.raises(OpmlError):
        parse_opml(b"<opml><body><outline xmlUrl=")


def test_opml_external_entities_are_refused():
    document = b"""<?xml version="1.0"?>
<!DOCTYPE opml [<!ENTITY xxe SYSTEM "file:///etc/hostname">]>
<opml version="2.0"><body><outline text="&xxe;" xmlUrl="https://x.example/rss"/></body></opml>"""
    with pytest.raises(OpmlError, match="entity"):
        parse_opml(document)


def test_add_list_remove_import_and_export(tmp_path):
    registry = str(tmp_path / "feeds.yaml")
    added = newsflow(
        "feeds", "add", "https://a.example/rss", "--publisher", "A", "--language", "de",
        "--min-interval", "60", "--file", registry,
    )  # fmt: skip
    assert [(f["url"], f["min_interval_s"]) for f in added["feeds"]] == [("https://a.example/rss", 60.0)]
    opml = tmp_path / "in.opml"
    opml.write_bytes(
        to_opml(
            [
                FeedSpec(url="https://b.example/atom", kind="atom", publisher="B"),
                FeedSpec(url="https://a.example/rss", publisher="other"),
            ]
        )
    )
    imported = newsflow("feeds", "import-opml", str(opml), "--file", registry)
    assert (imported["added"], imported["kept"]) == (1, 1)
    assert {f["url"]: f["publisher"] for f in imported["feeds"]} == {
        "https://a.example/rss": "A",  # already registered: keeps its own settings
        "https://b.example/atom": "B",
    }
    out = tmp_path / "out.opml"
    assert newsflow("feeds", "export-opml", str(out), "--file", registry)["feeds"] == 2
    assert {f.url for f in parse_opml(out.read_bytes())} == {
        "https://a.example/rss",
        "https://b.example/atom",
    }
    listed = newsflow("feeds", "--file", registry)  # list is the default action
    assert len(listed["feeds"]) == 2
    removed = newsflow("feeds", "remove", "https://b.example/atom", "--file", registry)
    assert [f["url"] for f in removed["feeds"]] == ["https://a.example/rss"]
    newsflow("feeds", "remove", "https://nope.example/", "--file", registry, expect=2)


def test_check_fetches_each_feed_once_and_stores_nothing(site, tmp_path):
    def html(request: BaseHTTPRequestHandler) -> None:
        body = b"<!doctype html><html><body>home page</body></html>"
        request.send_response(200)
        request.send_header("Content-Type", "text/html")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    site.add_route("/home", html)
    registry = tmp_path / "feeds.yaml"
    FeedRegistry(
        feeds=(
            FeedSpec(url=site.url("feeds/world-en.rss"), publisher="demo"),
            FeedSpec(url=site.url("feeds/politik-de.atom"), kind="atom", publisher="demo"),
            FeedSpec(url=site.url("home"), publisher="demo"),
            FeedSpec(url=site.url("missing.rss"), publisher="demo"),
        )
    ).save(registry)
    state_dir = tmp_path / "state"
    env = {"NEWSFLOW_HTTP_ALLOWED_HOSTS": '["127.0.0.1"]', "NEWSFLOW_INGEST_STATE_DIR": str(state_dir)}
    report = newsflow("feeds", "check", "--file", str(registry), env=env, expect=1)
    rows = {row["url"].rsplit("/", 1)[1]: row for row in report["feeds"]}
    assert {name: (row["outcome"], row["reason"]) for name, row in rows.items()} == {
        "world-en.rss": ("ok", "new_items"),
        "politik-de.atom": ("ok", "new_items"),
        "home": ("failed", "not_a_feed"),
        "missing.rss": ("failed", "http_404"),
    }
    assert rows["world-en.rss"]["items"] >= 5 and rows["home"]["items"] == 0
    assert (report["ok"], report["failed"]) == (2, 2)
    assert not state_dir.exists()
    paths = [target for _, target in site.request_log if not target.startswith("/robots.txt")]
    assert sorted(paths) == sorted(["/feeds/world-en.rss", "/feeds/politik-de.atom", "/home", "/missing.rss"])
    single = newsflow("feeds", "check", site.url("feeds/tech-en.atom"), "--kind", "atom", env=env)
    assert [row["reason"] for row in single["feeds"]] == ["new_items"]


def test_status_flags_feeds_that_keep_failing(tmp_path):
    registry = tmp_path / "feeds.yaml"
    urls = [
        "https://ok.example/rss",
        "https://flaky.example/rss",
        "https://dead.example/rss",
        "https://new.example/rss",
    ]
    FeedRegistry(feeds=tuple(FeedSpec(url=url, publisher="p") for url in urls)).save(registry)
    store = StateStore(tmp_path / "state" / "ingest.sqlite")
    now = time.time()

    def state(url: str, failures: int, error: str | None) -> FeedState:
        outcome = "failed" if failures else "new_items"
        return FeedState(url, None, None, None, 120.0, now + 60, failures, outcome, error, now, None, 3)

    store.save_feeds([state(urls[0], 0, None), state(urls[1], 1, "timeout"), state(urls[2], 5, "http_410")])
    store.close()
    env = {"NEWSFLOW_INGEST_STATE_DIR": str(tmp_path / "state"), "NEWSFLOW_INGEST_FAILING_AFTER": "3"}
    report = newsflow("feeds", "status", "--file", str(registry), env=env)
    rows = {row["url"]: row for row in report["feeds"]}
    assert [url for url, row in rows.items() if row["failing"]] == [urls[2]]
    assert rows[urls[2]]["last_error"] == "http_410" and rows[urls[2]]["consecutive_failures"] == 5
    assert rows[urls[3]]["polled"] is False
    assert report["failing"] == 1
