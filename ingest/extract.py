"""Article extraction: trafilatura for the body, structured data (JSON-LD, meta) for the facts.

trafilatura is good at the body but often returns only a date without time, misses authors or
the paywall flag; publishers state these precisely in JSON-LD and ``<meta>`` tags, so those win
where present.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import lxml.html
import trafilatura
from lxml import etree

from newsflow.errors import SkipMessage

_ARTICLE_TYPES = {
    "newsarticle",
    "article",
    "reportagenewsarticle",
    "analysisnewsarticle",
    "opinionnewsarticle",
    "backgroundnewsarticle",
    "blogposting",
    "liveblogposting",
    "report",
}
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_\-:.]+)""", re.IGNORECASE)
_PAYWALL_MARKERS = re.compile(
    r"\b(paywall|paywalled|plus-?content|premium-?content|article--?premium|subscriber-?only|"
    r"js-paywall|piano-?(?:offer|paywall)|stern-?plus|spiegel-?plus|zeit-?plus|faz-?plus)\b",
    re.IGNORECASE,
)
MAX_HTML_BYTES = 20 * 1024 * 1024
# Fewer words than this is navigation or an error page, not an article (a paywall teaser has more).
MIN_BODY_WORDS = 15
# Class/id tokens of page furniture that sits inside article containers on many news sites: ads,
# paywall boxes, newsletter and share widgets, comment teasers, related-article lists. Pruned
# before trafilatura sees the tree; an element holding most of the page's text is never pruned.
_BOILERPLATE_TOKEN = re.compile(
    r"^(?:ads?|adv|advert\w*|advertisement\w*|ad[-_]\w+|\w+[-_]ads?|dfp\w*|paywall\w*|piano\w*|"
    r"newsletter\w*|subscri\w*|cookie\w*|consent\w*|gdpr\w*|share\w*|sharing\w*|social\w*|"
    r"comments?|comment[-_]\w+|\w+[-_]comments?|disqus\w*|related\w*|\w+[-_]related\w*|"
    r"recommend\w*|promo\w*|sponsor\w*|outbrain\w*|taboola\w*|more[-_]on[-_]topic|read[-_]also\w*|"
    r"mehr[-_]zum[-_]thema|lesen[-_]sie[-_]auch|tip[-_]?line|news[-_]?tip\w*)$",
    re.IGNORECASE,
)
_PROTECTED_TAGS = {"html", "body", "main", "article"}
_MAX_PRUNED_SHARE = 0.4
# Short calls to action that end up as paragraphs of the body ("Have a news tip? Email ...").
_CALL_TO_ACTION = re.compile(
    r"^\W*(?:have a (?:news )?tip|got a (?:news )?tip|send us (?:a|your) tip|sign up (?:for|to)|"
    r"subscribe (?:to|now|for)|follow us (?:on|at)|read (?:also|more)\b|related:|more on this\b|"
    r"lesen sie (?:auch|mehr)|mehr zum thema|jetzt (?:abonnieren|weiterlesen|testen)|folgen sie uns|"
    r"melden sie sich (?:hier )?(?:an|für))",
    re.IGNORECASE,
)
_CTA_MAX_WORDS = 30


class ExtractionFailed(SkipMessage):
    """The page holds no article text newsflow can use (empty, not HTML, no main content)."""


@dataclass(frozen=True)
class Extracted:
    title: str
    body: str
    description: str | None
    authors: tuple[str, ...]
    published_at: datetime | None
    modified_at: datetime | None
    site_name: str | None
    language: str | None
    categories: tuple[str, ...]
    top_image: str | None
    canonical_url: str | None
    paywalled: bool


def prune_boilerplate(tree: Any) -> int:
    """Remove furniture elements by their class/id vocabulary; returns how many were removed."""
    total = len(" ".join(tree.xpath("//body//text()")).split()) or 1
    doomed = []
    for element in tree.xpath("//body//*[@class or @id]"):
        if element.tag in _PROTECTED_TAGS:
            continue
        tokens = f"{element.get('class', '')} {element.get('id', '')}".split()
        if any(_BOILERPLATE_TOKEN.match(token) for token in tokens):
            doomed.append(element)
    removed = 0
    for element in doomed:
        if element.getparent() is None:
            continue
        words = len(element.text_content().split())
        if words / total > _MAX_PRUNED_SHARE:
            continue
        element.drop_tree()
        removed += 1
    return removed


def drop_calls_to_action(body: str) -> str:
    """Remove short call-to-action lines that survived extraction."""
    kept = [
        line
        for line in body.split("\n")
        if not (_CALL_TO_ACTION.match(line) and len(line.split()) <= _CTA_MAX_WORDS)
    ]
    return "\n".join(kept).strip()


def decode_html(data: bytes, declared_charset: str | None = None) -> str:
    """Bytes to text: the HTTP charset, then a BOM or valid UTF-8, then the page's meta charset."""
    for candidate in (declared_charset,):
        if candidate and _codec_exists(candidate):
            return data.decode(candidate, errors="replace")
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8", errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    match = _META_CHARSET.search(data[:4096])
    if match:
        charset = match.group(1).decode("ascii", "ignore")
        if _codec_exists(charset):
            return data.decode(charset, errors="replace")
    # Undeclared and not UTF-8: windows-1252 is what such (mostly western) pages use in practice.
    return data.decode("windows-1252", errors="replace")


def _codec_exists(name: str) -> bool:
    try:
        codecs.lookup(name)
    except LookupError:
        return False
    return True


def parse_datetime(value: object) -> datetime | None:
    """ISO-8601 date or datetime to an aware datetime (naive values are taken as UTC)."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _walk_jsonld(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, list):
        for item in node:
            yield from _walk_jsonld(item)
    elif isinstance(node, dict):
        yield node
        for key in ("@graph", "mainEntity", "mainEntityOfPage"):
            if key in node:
                yield from _walk_jsonld(node[key])


def _types(node: dict[str, Any]) -> set[str]:
    value = node.get("@type", [])
    return {str(t).lower() for t in (value if isinstance(value, list) else [value])}


def article_jsonld(tree: Any) -> dict[str, Any]:
    """The page's first article-typed JSON-LD object, or ``{}``; broken JSON-LD is ignored."""
    for script in tree.xpath('//script[@type="application/ld+json"]'):
        try:
            data = json.loads(script.text or "", strict=False)
        except ValueError:
            continue
        for node in _walk_jsonld(data):
            if _types(node) & _ARTICLE_TYPES:
                return node
    return {}


def _names(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    names: list[str] = []
    for item in items:
        name = item.get("name") if isinstance(item, dict) else item
        if isinstance(name, str) and name.strip() and name.strip() not in names:
            names.append(name.strip())
    return tuple(names)


def _meta(tree: Any, *keys: str) -> str | None:
    for key in keys:
        for attr in ("property", "name", "itemprop"):
            values = tree.xpath(f'//meta[@{attr}="{key}"]/@content')
            if values and str(values[0]).strip():
                return str(values[0]).strip()
    return None


def _is_free(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    return None


def _paywalled(tree: Any, jsonld: dict[str, Any]) -> bool:
    free = _is_free(jsonld.get("isAccessibleForFree"))
    if free is None:
        parts = jsonld.get("hasPart")
        for part in parts if isinstance(parts, list) else [parts]:
            if isinstance(part, dict) and _is_free(part.get("isAccessibleForFree")) is False:
                free = False
    if free is not None:
        return not free
    classes = " ".join(str(c) for c in tree.xpath("//body//@class | //body//@id"))
    return bool(_PAYWALL_MARKERS.search(classes))


def extract(html: bytes | str, url: str | None = None, charset: str | None = None) -> Extracted:
    """Extract one article; raises ``ExtractionFailed`` with a reason when there is none."""
    if isinstance(html, bytes):
        if len(html) > MAX_HTML_BYTES:
            raise ExtractionFailed("too_large", f"{len(html)} bytes")
        text = decode_html(html, charset)
    else:
        text = html
    if not text.strip():
        raise ExtractionFailed("empty_document")
    if "\x00" in text[:4096]:
        raise ExtractionFailed("not_html", "binary content")
    try:
        tree = lxml.html.document_fromstring(text)
    except (etree.ParserError, ValueError) as exc:
        raise ExtractionFailed("unparseable_html", str(exc)) from exc
    jsonld = article_jsonld(tree)
    # Structured data first: trafilatura prunes scripts and chrome from the tree it is given.
    canonical = _first_str(tree.xpath('//link[@rel="canonical"]/@href')) or _meta(tree, "og:url")
    html_lang = _first_str(tree.xpath("/html/@lang"))
    paywalled = _paywalled(tree, jsonld)
    meta = {
        key: _meta(tree, *names)
        for key, names in {
            "og:title": ("og:title",),
            "site_name": ("og:site_name",),
            "image": ("og:image",),
            "description": ("description", "og:description"),
            "published": ("article:published_time", "datePublished", "date"),
            "modified": ("article:modified_time", "dateModified"),
        }.items()
    }
    prune_boilerplate(tree)
    doc = trafilatura.bare_extraction(
        tree, url=url, with_metadata=True, include_comments=False, include_tables=True, favor_precision=True
    )
    body = drop_calls_to_action(getattr(doc, "text", None) or "") if doc is not None else ""
    if len(body.split()) < MIN_BODY_WORDS:
        raise ExtractionFailed("no_main_content", f"{len(body.split())} words: {url or ''}")
    title = (
        _first_str(jsonld.get("headline"))
        or meta["og:title"]
        or (getattr(doc, "title", None) or "").strip()
        or ""
    )
    if not title:
        raise ExtractionFailed("no_title", url or "")
    authors = _names(jsonld.get("author")) or _split_authors(getattr(doc, "author", None))
    publisher = jsonld.get("publisher")
    site_name = (
        _first_str(publisher.get("name") if isinstance(publisher, dict) else None)
        or meta["site_name"]
        or getattr(doc, "sitename", None)
    )
    language = _first_str(jsonld.get("inLanguage")) or html_lang
    categories = tuple(
        dict.fromkeys(
            c.strip()
            for c in [
                *_listify(getattr(doc, "categories", None)),
                *_listify(getattr(doc, "tags", None)),
                *_listify(jsonld.get("keywords")),
            ]
            if c.strip()
        )
    )
    image = jsonld.get("image")
    top_image = (
        _first_str(image.get("url") if isinstance(image, dict) else image)
        or meta["image"]
        or getattr(doc, "image", None)
    )
    return Extracted(
        title=title,
        body=body,
        description=_first_str(jsonld.get("description"))
        or meta["description"]
        or getattr(doc, "description", None),
        authors=authors,
        published_at=parse_datetime(jsonld.get("datePublished"))
        or parse_datetime(meta["published"])
        or parse_datetime(getattr(doc, "date", None)),
        modified_at=parse_datetime(jsonld.get("dateModified")) or parse_datetime(meta["modified"]),
        site_name=site_name,
        language=(language or "").split("-")[0].lower() or getattr(doc, "language", None),
        categories=categories,
        top_image=top_image,
        canonical_url=canonical,
        paywalled=paywalled,
    )


def _first_str(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    return value.strip() if isinstance(value, str) and value.strip() else None


def _listify(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, str):
        return [v for v in value.split(",")]
    return []


def _split_authors(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(a.strip() for a in re.split(r";|,| und | and ", value) if a.strip())
