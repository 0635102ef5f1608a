"""The fetch stage: a link in, an extracted article out (and, if configured, the raw page archived)."""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from urllib.parse import urlsplit

from ingest.extract import Extracted, extract
from ingest.http import FetchSkipped, HttpClient
from ingest.rawstore import RawStore
from ingest.urls import article_id, canonicalize_url, source_domain
from newsflow.schemas import Article, LinkMessage

_HTML_TYPES = {"text/html", "application/xhtml+xml", ""}
log = logging.getLogger(__name__)


def body_hash(text: str) -> str:
    """Hash of the whitespace-normalised body: a re-published but unchanged article hashes equal."""
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()


def _same_site(a: str, b: str) -> bool:
    """A page may only name a canonical URL on its own site (stops canonical spoofing)."""
    host_a, host_b = source_domain(a), source_domain(b)
    return host_a == host_b or host_a.endswith("." + host_b) or host_b.endswith("." + host_a)


def resolve_canonical(declared: str | None, fetched_url: str, fallback: str) -> str:
    """The page's own canonical URL when it is an http(s) URL on the fetched site, else ``fallback``."""
    if declared and urlsplit(declared).scheme in {"http", "https"}:
        canonical = canonicalize_url(declared)
        if _same_site(canonical, fetched_url):
            return canonical
    return fallback


def build_article(
    page: Extracted, url: str, canonical: str, fetched_at: datetime, link: LinkMessage | None = None
) -> Article:
    """The wire article of an extracted page; the link (when there is one) fills what the page lacks."""
    return Article(
        article_id=article_id(canonical),
        url=url,
        canonical_url=canonical,
        title=page.title,
        body=page.body,
        description=page.description,
        authors=page.authors,
        published_at=page.published_at or (link.published_at if link else None),
        modified_at=page.modified_at,
        site_name=page.site_name,
        language=page.language or (link.language_hint if link else None),
        categories=page.categories,
        top_image=page.top_image,
        feed_url=link.feed_url if link else None,
        publisher=link.publisher if link else None,
        source_domain=source_domain(canonical) or "local",
        paywalled=page.paywalled,
        body_hash=body_hash(page.body),
        fetched_at=fetched_at,
        revision=link.revision if link else 1,
        recheck=link.recheck if link else False,
    )


def article_from_html(
    link: LinkMessage, final_url: str, html: bytes, charset: str | None, fetched_at: datetime
) -> Article:
    """Extract a fetched (or archived) page of ``link`` into its wire article."""
    page = extract(html, url=final_url, charset=charset)
    canonical = resolve_canonical(page.canonical_url, final_url, link.canonical_url)
    return build_article(page, final_url, canonical, fetched_at, link)


class FetchStage:
    name = "fetch"
    input_model = LinkMessage

    def __init__(self, http: HttpClient, raw_store: RawStore | None = None) -> None:
        self.http = http
        self.raw_store = raw_store  # None: raw HTML is not kept

    def process(self, message: LinkMessage) -> Article:
        fetched = self.http.get(message.url, accept="text/html,application/xhtml+xml;q=0.9,*/*;q=0.5")
        if fetched.content_type not in _HTML_TYPES:
            raise FetchSkipped("unsupported_content_type", fetched.content_type)
        if not fetched.body.strip():
            raise FetchSkipped("empty_body", message.url)
        article = article_from_html(
            message, fetched.final_url, fetched.body, fetched.charset, fetched.fetched_at
        )
        if self.raw_store is not None:
            try:
                self.raw_store.put(article, message, fetched.body, fetched.charset)
            except OSError as exc:  # the archive is optional: a full disk must not stop the pipeline
                log.warning("raw html not archived for %s: %s", article.article_id, exc)
        return article
