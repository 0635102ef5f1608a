"""The fetch stage: a link in, an extracted article out."""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

from ingest.extract import extract
from ingest.http import FetchSkipped, HttpClient
from ingest.urls import article_id, canonicalize_url, source_domain
from newsflow.schemas import Article, LinkMessage

_HTML_TYPES = {"text/html", "application/xhtml+xml", ""}


def body_hash(text: str) -> str:
    """Hash of the whitespace-normalised body: a re-published but unchanged article hashes equal."""
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()


def _same_site(a: str, b: str) -> bool:
    """A page may only name a canonical URL on its own site (stops canonical spoofing)."""
    host_a, host_b = source_domain(a), source_domain(b)
    return host_a == host_b or host_a.endswith("." + host_b) or host_b.endswith("." + host_a)


class FetchStage:
    name = "fetch"
    input_model = LinkMessage

    def __init__(self, http: HttpClient) -> None:
        self.http = http

    def process(self, message: LinkMessage) -> Article:
        fetched = self.http.get(message.url, accept="text/html,application/xhtml+xml;q=0.9,*/*;q=0.5")
        if fetched.content_type not in _HTML_TYPES:
            raise FetchSkipped("unsupported_content_type", fetched.content_type)
        if not fetched.body.strip():
            raise FetchSkipped("empty_body", message.url)
        page = extract(fetched.body, url=fetched.final_url, charset=fetched.charset)
        canonical = message.canonical_url
        if page.canonical_url and urlsplit(page.canonical_url).scheme in {"http", "https"}:
            declared = canonicalize_url(page.canonical_url)
            if _same_site(declared, fetched.final_url):
                canonical = declared
        return Article(
            article_id=article_id(canonical),
            url=fetched.final_url,
            canonical_url=canonical,
            title=page.title,
            body=page.body,
            description=page.description,
            authors=page.authors,
            published_at=page.published_at or message.published_at,
            modified_at=page.modified_at,
            site_name=page.site_name,
            language=page.language or message.language_hint,
            categories=page.categories,
            top_image=page.top_image,
            feed_url=message.feed_url,
            publisher=message.publisher,
            source_domain=source_domain(canonical),
            paywalled=page.paywalled,
            body_hash=body_hash(page.body),
            fetched_at=fetched.fetched_at,
        )
