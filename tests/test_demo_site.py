"""The offline demo site and its server: feeds parse, links resolve, expectations match the pages.

Everything goes over real HTTP on 127.0.0.1 (no Kafka, no Elasticsearch). The trafilatura report at the
end never fails; run ``pytest tests/test_demo_site.py -k trafilatura -rP`` to read it.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

import feedparser
import pytest

from newsflow.demo.server import PLACEHOLDER, SiteServer, demo_site_root

ROOT = demo_site_root()
EXPECTED: list[dict[str, Any]] = json.loads((ROOT / "expected.json").read_text(encoding="utf-8"))["articles"]
BY_PATH = {entry["path"]: entry for entry in EXPECTED}
FEEDS = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "feeds").iterdir())
ARTICLE_PAGES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "articles").glob("*.html"))
TEXT_FILES = sorted(
    p.relative_to(ROOT).as_posix()
    for p in ROOT.rglob("*")
    if p.is_file() and p.suffix in {".html", ".rss", ".atom", ".json", ".txt"}
)

# Loopback must never be sent through an HTTP(S)_PROXY from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> tuple[int, Message, bytes]:
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with _OPENER.open(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:  # urllib reports 304 and 4xx as errors
        with err:
            return err.code, err.headers, err.read()


def decode_page(body: bytes) -> str:
    match = re.search(rb"""<meta[^>]+charset\s*=\s*["']?([\w-]+)""", body[:2048], re.IGNORECASE)
    return body.decode(match.group(1).decode() if match else "utf-8")


def norm(text: str) -> str:
    return " ".join(text.split())


class _PageFacts(HTMLParser):
    """Visible text, <html lang>, canonical, meta/og properties and JSON-LD blocks of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lang = ""
        self.canonical = ""
        self.meta: dict[str, str] = {}
        self.jsonld: list[Any] = []
        self.h1: list[str] = []
        self._text: list[str] = []
        self._script: str | None = None
        self._in_h1 = False
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "html":
            self.lang = a.get("lang", "")
        elif tag == "link" and a.get("rel") == "canonical":
            self.canonical = a.get("href", "")
        elif tag == "meta" and ("property" in a or "name" in a):
            self.meta.setdefault(a.get("property") or a.get("name", ""), a.get("content", ""))
        elif tag == "script":
            self._script = "" if a.get("type") == "application/ld+json" else None
            self._skip += 1
        elif tag in {"style", "noscript"}:
            self._skip += 1
        elif tag == "h1":
            self._in_h1 = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            if self._script is not None:
                self.jsonld.append(json.loads(self._script))
            self._script = None
            self._skip -= 1
        elif tag in {"style", "noscript"}:
            self._skip -= 1
        elif tag == "h1":
            self._in_h1 = False

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._script += data
        if self._skip:
            return
        self._text.append(data)
        if self._in_h1:
            self.h1.append(data)

    @property
    def text(self) -> str:
        return norm(" ".join(self._text))

    def news_article(self) -> dict[str, Any]:
        candidates: list[Any] = []
        for block in self.jsonld:
            items = block if isinstance(block, list) else block.get("@graph", [block])
            candidates += [item for item in items if item.get("@type") == "NewsArticle"]
        assert len(candidates) == 1, "exactly one NewsArticle in JSON-LD"
        article: dict[str, Any] = candidates[0]
        return article


def page_facts(body: bytes) -> _PageFacts:
    facts = _PageFacts()
    facts.feed(decode_page(body))
    facts.close()
    return facts


@pytest.fixture(scope="module")
def site() -> Iterator[SiteServer]:
    with SiteServer(ROOT) as server:
        yield server


@pytest.fixture(scope="module")
def feed_links(site: SiteServer) -> dict[str, list[str]]:
    """Feed path -> entry links as served (placeholders replaced)."""
    links: dict[str, list[str]] = {}
    for feed in FEEDS:
        _, _, body = fetch(site.url(feed))
        links[feed] = [entry.link for entry in feedparser.parse(body).entries]
    return links


# ---------------------------------------------------------------------------------------------- inventory


def test_site_inventory() -> None:
    assert len(ARTICLE_PAGES) >= 24
    assert {
        "feeds/world-en.rss",
        "feeds/politik-de.atom",
        "feeds/wirtschaft-de.rss",
        "feeds/tech-en.atom",
    } <= set(FEEDS)
    assert sorted(BY_PATH) == ARTICLE_PAGES, "one expected.json entry per article page, and no others"
    languages = [entry["language"] for entry in EXPECTED]
    assert set(languages) == {"de", "en"}
    assert abs(languages.count("de") - languages.count("en")) <= 2, "about half German, half English"
    assert sum(entry["paywalled"] for entry in EXPECTED) >= 1
    assert any(entry.get("encoding") == "iso-8859-1" for entry in EXPECTED)
    assert any("feed_path" in entry for entry in EXPECTED), "the AMP case"


# ---------------------------------------------------------------------------------------------- feeds


@pytest.mark.parametrize("feed", FEEDS)
def test_feed_parses_without_bozo(site: SiteServer, feed: str) -> None:
    status, headers, body = fetch(site.url(feed))
    assert status == 200
    content_type = headers["Content-Type"]
    assert content_type == ("application/rss+xml" if feed.endswith(".rss") else "application/atom+xml")
    parsed = feedparser.parse(body, response_headers={"content-type": content_type})
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == ("rss20" if feed.endswith(".rss") else "atom10")
    assert parsed.feed.title
    assert len(parsed.entries) >= 5
    for entry in parsed.entries:
        assert entry.title
        assert entry.id
        assert entry.get("published_parsed") is not None
        assert entry.get("author")
        assert entry.get("tags")
        assert entry.get("summary")


def test_feed_links_resolve_to_served_pages(site: SiteServer, feed_links: dict[str, list[str]]) -> None:
    for feed, links in feed_links.items():
        for link in links:
            assert link.startswith(site.base_url + "/"), (feed, link)
            status, headers, body = fetch(link)
            assert status == 200, (feed, link)
            assert headers["Content-Type"].startswith("text/html")
            assert PLACEHOLDER not in body


def test_feeds_contain_tracking_fragment_and_duplicate(feed_links: dict[str, list[str]]) -> None:
    all_links = [link for links in feed_links.values() for link in links]
    assert any("utm_source=rss" in link and "utm_medium=feed" in link and "#" in link for link in all_links)
    targets = [urlsplit(link).path for link in all_links]
    duplicated = {path for path in targets if targets.count(path) > 1}
    assert duplicated, "one article must appear in two feeds (dedupe case)"
    for path in duplicated:
        variants = {link for link in all_links if urlsplit(link).path == path}
        assert any("utm_" in link for link in variants), "the duplicate uses a tracking-parameter URL"


def test_every_article_page_is_in_the_feeds_expected_json_names(
    site: SiteServer, feed_links: dict[str, list[str]]
) -> None:
    """Feed links are mapped to pages via their path, or via rel=canonical for the AMP copy."""
    found: dict[str, set[str]] = {}
    for feed, links in feed_links.items():
        for link in links:
            path = urlsplit(link).path.lstrip("/")
            if path not in BY_PATH:
                canonical = page_facts(fetch(link)[2]).canonical
                assert BY_PATH.get(urlsplit(canonical).path.lstrip("/"), {}).get("feed_path") == path
                path = urlsplit(canonical).path.lstrip("/")
            found.setdefault(path, set()).add(feed)
    assert sorted(found) == ARTICLE_PAGES
    for path, feeds in found.items():
        assert sorted(feeds) == BY_PATH[path]["feeds"], path


# ---------------------------------------------------------------------------------------------- server


@pytest.mark.parametrize("path", TEXT_FILES)
def test_placeholders_replaced(site: SiteServer, path: str) -> None:
    raw = (ROOT / path).read_bytes()
    status, _, body = fetch(site.url(path))
    assert status == 200
    assert PLACEHOLDER not in body
    assert body == raw.replace(PLACEHOLDER, site.base_url.encode())


def test_html_content_types_and_iso_page(site: SiteServer) -> None:
    for path in ARTICLE_PAGES:
        _, headers, body = fetch(site.url(path))
        if BY_PATH[path].get("encoding") == "iso-8859-1":
            assert headers["Content-Type"] == "text/html"
            with pytest.raises(UnicodeDecodeError):
                body.decode("utf-8")
            assert b'<meta charset="iso-8859-1">' in body
            text = body.decode("iso-8859-1")
            assert "Säure" in text
            assert "Schönhofen" in text
        else:
            assert headers["Content-Type"] == "text/html; charset=utf-8", path
            body.decode("utf-8")


def test_conditional_get(site: SiteServer) -> None:
    url = site.url("articles/en-port-strike.html")
    status, headers, body = fetch(url)
    etag, last_modified = headers["ETag"], headers["Last-Modified"]
    assert status == 200
    assert etag.startswith('"')
    assert last_modified.endswith("GMT")

    status, headers, body = fetch(url, {"If-None-Match": etag})
    assert (status, body) == (304, b"")
    assert headers["ETag"] == etag
    assert fetch(url, {"If-None-Match": f'"other", W/{etag}'})[0] == 304
    assert fetch(url, {"If-Modified-Since": last_modified})[0] == 304
    assert fetch(url, {"If-None-Match": '"stale"'})[0] == 200
    assert fetch(url, {"If-None-Match": '"stale"', "If-Modified-Since": last_modified})[0] == 200
    assert fetch(url, {"If-Modified-Since": "Thu, 01 Jan 1998 00:00:00 GMT"})[0] == 200
    assert fetch(url, {"If-Modified-Since": "not a date"})[0] == 200

    status, headers, body = fetch(url, method="HEAD")
    assert (status, body) == (200, b"")
    assert headers["ETag"] == etag


def test_etag_depends_on_served_bytes() -> None:
    """The placeholder is substituted before hashing, so two servers (ports) give different ETags."""
    with SiteServer(ROOT) as one, SiteServer(ROOT) as two:
        first = fetch(one.url("feeds/world-en.rss"))[1]["ETag"]
        second = fetch(two.url("feeds/world-en.rss"))[1]["ETag"]
    assert first != second


def test_unknown_and_escaping_paths_are_404(site: SiteServer) -> None:
    assert fetch(site.url("articles/does-not-exist.html"))[0] == 404
    assert fetch(site.url("feeds/"))[0] == 404
    connection = http.client.HTTPConnection("127.0.0.1", int(urlsplit(site.base_url).port or 0), timeout=10)
    try:
        for target in ("/../server.py", "/%2e%2e/server.py", "/articles/%00.html"):
            connection.request("GET", target)
            response = connection.getresponse()
            response.read()
            assert response.status == 404, target
            connection.close()
    finally:
        connection.close()
    assert fetch(site.url("articles/en-port-strike.html"), method="POST")[0] == 405


def test_index_and_query_strings(site: SiteServer) -> None:
    status, headers, _ = fetch(site.base_url + "/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert fetch(site.url("articles/en-port-strike.html?utm_source=rss#latest"))[0] == 200


def test_routes_and_request_log() -> None:
    hits = threading.Event()

    def hello(handler: BaseHTTPRequestHandler) -> None:
        hits.set()
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain")
        handler.end_headers()
        handler.wfile.write(b"hello")

    def moved(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(301)
        handler.send_header("Location", "/feeds/tech-en.atom")
        handler.end_headers()

    with SiteServer(ROOT) as server:
        server.add_route("/hello", hello)
        server.add_route("/feeds/world-en.rss", moved)  # routes win over files
        assert fetch(server.url("hello?x=1"))[::2] == (200, b"hello")
        assert hits.is_set()
        status, _, body = fetch(server.url("feeds/world-en.rss"))
        assert status == 200
        assert b"Metro Ledger" in body
        assert server.request_log == [
            ("GET", "/hello?x=1"),
            ("GET", "/feeds/world-en.rss"),
            ("GET", "/feeds/tech-en.atom"),
        ]
        with pytest.raises(ValueError, match="must start with"):
            server.add_route("hello", hello)


def test_lifecycle() -> None:
    server = SiteServer(ROOT)
    with pytest.raises(RuntimeError):
        _ = server.base_url
    server.start()
    try:
        with pytest.raises(RuntimeError):
            server.start()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.base_url)
    finally:
        server.stop()
    server.stop()  # idempotent
    with server:  # restartable
        assert fetch(server.url("robots.txt"))[0] == 200
    with pytest.raises(FileNotFoundError):
        SiteServer(ROOT / "nope")


# ---------------------------------------------------------------------------------------------- expectations


@pytest.mark.parametrize("path", ARTICLE_PAGES)
def test_expectations_are_facts_of_the_page(site: SiteServer, path: str) -> None:
    entry = BY_PATH[path]
    facts = page_facts(fetch(site.url(path))[2])
    article = facts.news_article()

    assert facts.lang.split("-")[0] == entry["language"]
    assert norm(" ".join(facts.h1)) == entry["title"]
    assert facts.meta["og:title"] == entry["title"]
    assert facts.meta["description"]
    assert facts.meta["og:site_name"] == entry["publisher"]
    assert facts.meta["og:image"].startswith(site.base_url)
    assert facts.meta["article:published_time"] == entry["published"]
    assert facts.canonical == facts.meta["og:url"] == site.url(path)
    assert article["headline"] == entry["title"]
    assert article["datePublished"] == entry["published"]
    assert article["dateModified"] >= entry["published"]
    assert article["inLanguage"].split("-")[0] == entry["language"]
    assert article["keywords"]
    assert article["publisher"]
    authors = article["author"] if isinstance(article["author"], list) else [article["author"]]
    assert [author["name"] for author in authors] == entry["authors"]
    assert article["isAccessibleForFree"] is (not entry["paywalled"])

    for phrase in entry["body_must_contain"]:
        assert norm(phrase) in facts.text, phrase
    for phrase in entry["body_must_not_contain"]:
        # Boilerplate must really be on the page, otherwise the negative check proves nothing.
        assert norm(phrase) in facts.text, phrase
        assert not any(norm(phrase) in norm(good) for good in entry["body_must_contain"])
    assert len(entry["body_must_contain"]) >= 2
    assert len(entry["body_must_not_contain"]) >= 5


def test_paywalled_page_has_only_a_teaser(site: SiteServer) -> None:
    (entry,) = [e for e in EXPECTED if e["paywalled"]]
    facts = page_facts(fetch(site.url(entry["path"]))[2])
    assert "Jetzt weiterlesen mit Plus" in facts.text
    assert facts.news_article()["hasPart"]["isAccessibleForFree"] is False


def test_amp_copy_points_to_canonical_page(site: SiteServer) -> None:
    (entry,) = [e for e in EXPECTED if "feed_path" in e]
    facts = page_facts(fetch(site.url(entry["feed_path"]))[2])
    assert facts.canonical == site.url(entry["path"])
    assert facts.canonical != site.url(entry["feed_path"])
    assert norm(" ".join(facts.h1)) == entry["title"]
    for phrase in entry["body_must_contain"]:
        assert norm(phrase) in facts.text
    assert (
        f'rel="amphtml" href="{site.url(entry["feed_path"])}"'.encode() in fetch(site.url(entry["path"]))[2]
    )


def test_body_length(site: SiteServer) -> None:
    """250-700 words of article text, except the paywall teaser (only paragraphs inside the article body)."""
    for path in ARTICLE_PAGES:
        html = decode_page((ROOT / path).read_bytes())
        body = re.search(
            r'(?:article-body|story__text|story__body|entry-content)"[^>]*>(.*?)\n\s*</div>', html, re.S
        )
        assert body is not None, path
        paragraphs = re.findall(r"<p(?: class=\"(?:lead|body-text)\")?>(.*?)</p>", body.group(1), re.S)
        words = sum(len(p.split()) for p in paragraphs)
        assert len(paragraphs) >= 2, path
        if BY_PATH[path]["paywalled"]:
            assert 40 <= words < 250, path
        else:
            assert 250 <= words <= 700, (path, words)


# ---------------------------------------------------------------------------------------------- trafilatura


def test_trafilatura_report(site: SiteServer) -> None:
    """Informational only: how plain ``trafilatura.extract`` does on the golden pages. Never asserts quality.

    Plain text output (the library default) is used on purpose: it appends the comments section, which the
    JSON output would file separately under ``comments``.
    """
    trafilatura = pytest.importorskip("trafilatura")
    lines = []
    perfect = {"default": 0, "precision": 0}
    pages = ARTICLE_PAGES + [e["feed_path"] for e in EXPECTED if "feed_path" in e]
    for path in pages:
        entry = BY_PATH.get(path) or next(e for e in EXPECTED if e.get("feed_path") == path)
        url = site.url(path)
        body = fetch(url)[2]
        metadata = trafilatura.extract_metadata(body, default_url=url)
        title = metadata.title if metadata is not None else None
        for mode, precision in (("default", False), ("precision", True)):
            text = norm(trafilatura.extract(body, url=url, favor_precision=precision) or "")
            missing = [p for p in entry["body_must_contain"] if norm(p) not in text]
            leaked = [p for p in entry["body_must_not_contain"] if norm(p) in text]
            perfect[mode] += not missing and not leaked
            lines.append(
                f"{'OK ' if not missing and not leaked else 'BAD'} {mode:<9} {path:<50} "
                f"title={'ok' if title == entry['title'] else repr(title)} "
                f"missing={[m[:40] for m in missing]} leaked={[m[:40] for m in leaked]}"
            )
    total = len(pages)
    lines.append(
        f"fully right: default {perfect['default']}/{total}, favor_precision {perfect['precision']}/{total}"
    )
    print("\n".join(lines))
