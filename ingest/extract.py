"""Article extraction: trafilatura for the body, structured data (JSON-LD, meta) for the facts.

trafilatura is good at the body but often returns only a date without time, misses authors or
the paywall flag; publishers state these precisely in JSON-LD and ``<meta>`` tags, so those win
where present. Around trafilatura, general repairs raise body quality (measured with
``newsflow eval extraction``): comments stripped keeping their text, furniture pruned by class
vocabulary, split articles rejoined, precision mode checked against the default mode, repeated
headlines dropped, and a fuller JSON-LD ``articleBody`` preferred.
"""

from __future__ import annotations

import codecs
import copy
import itertools
import json
import re
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from html import unescape
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
# before trafilatura sees the tree (see prune_boilerplate for when a token marks article text).
_BOILERPLATE_TOKEN = re.compile(
    r"^(?:ads?|adv|advert\w*|advertisement\w*|ad[-_]\w+|\w+[-_]ads?|dfp\w*|paywall\w*|piano\w*|"
    r"newsletter\w*|subscri\w*|cookie\w*|consent\w*|gdpr\w*|share\w*|sharing\w*|social\w*|"
    r"comments?|comment[-_]\w+|\w+[-_]comments?|disqus\w*|related\w*|\w+[-_]related\w*|"
    r"recommend\w*|promo\w*|sponsor\w*|outbrain\w*|taboola\w*|more[-_]on[-_]topic|read[-_]also\w*|"
    r"mehr[-_]zum[-_]thema|lesen[-_]sie[-_]auch|tip[-_]?line|news[-_]?tip\w*)$",
    re.IGNORECASE,
)
_PROTECTED_TAGS = {"html", "body", "main", "article"}
# The elements of one furniture token holding more than this share of the page's visible words
# may be the article itself (see prune_boilerplate).
_MAX_PRUNED_SHARE = 0.4
# An article split into blocks: blocks with this many paragraphs of this many words each, and no
# paragraph or heading of this many words between them (see rejoin_split_body).
_SPLIT_MIN_PARAGRAPHS = 3
_SPLIT_PARAGRAPH_WORDS = 20
_INTERLEAVED_WORDS = 5
_BODY_TAGS = {"p", "h2", "h3", "h4", "li", "blockquote"}
_CONTENT_TAGS = {"p", "li", "ol", "ul", "h2", "h3", "h4", "h5", "h6", "blockquote", "figure", "table", "pre"}
_VISIBLE_TEXT = (
    ".//text()[not(ancestor::script or ancestor::style or ancestor::noscript or ancestor::template)]"
)
# Short calls to action that end up as paragraphs of the body ("Have a news tip? Email ...").
_CALL_TO_ACTION = re.compile(
    r"^\W*(?:have a (?:news )?tip|got a (?:news )?tip|send us (?:a|your) tip|sign up (?:for|to)|"
    r"subscribe (?:to|now|for)|follow us (?:on|at)|read (?:also|more)\b|related:|more on this\b|"
    r"lesen sie (?:auch|mehr)|mehr zum thema|jetzt (?:abonnieren|weiterlesen|testen)|folgen sie uns|"
    r"melden sie sich (?:hier )?(?:an|für))",
    re.IGNORECASE,
)
_CTA_MAX_WORDS = 30
_WORD = re.compile(r"\w+")
# Precision mode's text is replaced by the default mode's when it has less than this share of it.
_PRECISION_FALLBACK_SHARE = 0.5
# JSON-LD articleBody replaces the extracted text when it covers this share of its shingles and is
# this much longer: such bodies also carry captions and sign-offs, so only a clearly fuller one (the
# page shows a truncated or split article) is worth the swap.
_SUPERSET_COVERAGE = 0.95
_SUPERSET_GROWTH = 1.25
# A leading body line contained in the headline is a kicker only when it is this long.
_MIN_KICKER_CHARS = 15
# JSON-LD wordCount this many times the visible body means the rest is behind a paywall.
_TRUNCATION_FACTOR = 2


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


def _visible_words(element: Any) -> int:
    return len(" ".join(element.xpath(_VISIBLE_TEXT)).split())


def prune_boilerplate(tree: Any) -> int:
    """Remove furniture elements by their class/id vocabulary; returns how many were removed.

    Tokens are judged together: when the elements carrying one token hold much of the page's
    text and are one container or mostly paragraphs, lists and headings (``paywall`` on every
    metered paragraph), the token marks the article, not furniture.
    """
    body = tree.find("body")
    total = (_visible_words(body) if body is not None else 0) or 1
    groups: dict[str, list[Any]] = {}
    for element in tree.xpath("//body//*[@class or @id]"):
        if element.tag in _PROTECTED_TAGS:
            continue
        tokens = f"{element.get('class', '')} {element.get('id', '')}".split()
        token = next((t.lower() for t in tokens if _BOILERPLATE_TOKEN.match(t)), None)
        if token is not None:
            groups.setdefault(token, []).append(element)
    removed = 0
    for elements in groups.values():
        share = sum(_visible_words(element) for element in elements) / total
        textual = sum(element.tag in _CONTENT_TAGS for element in elements) * 2 > len(elements)
        if share > _MAX_PRUNED_SHARE and (textual or len(elements) == 1):
            continue
        for element in elements:
            if element.getparent() is not None:
                element.drop_tree()
                removed += 1
    return removed


def rejoin_split_body(tree: Any) -> int:
    """Move an article split into blocks by ad rows into its first block; returns groups rejoined.

    Some layouts cut the body into several same-class blocks, each in its own grid row between
    ads; trafilatura then keeps only one. Blocks of one class, each with several long paragraphs,
    under distinct parents of one class, with no paragraph or heading between them, are one
    article. Blocks that are siblings are left alone (trafilatura already sees them together).
    """
    groups: dict[tuple[str, str], list[Any]] = {}
    for element in tree.xpath("//body//*[@class][p]"):
        paragraphs = element.iterchildren("p")
        long = sum(len(p.text_content().split()) >= _SPLIT_PARAGRAPH_WORDS for p in paragraphs)
        if long >= _SPLIT_MIN_PARAGRAPHS:
            groups.setdefault((element.tag, element.get("class")), []).append(element)
    rejoined = 0
    for blocks in groups.values():
        if len(blocks) > 1 and _is_split_body(tree, blocks):
            first = blocks[0]
            for block in blocks[1:]:
                first.extend(list(block))
                block.drop_tree()
            rejoined += 1
    return rejoined


def _is_split_body(tree: Any, blocks: list[Any]) -> bool:
    parents = [block.getparent() for block in blocks]
    if any(parent is None for parent in parents) or len({id(parent) for parent in parents}) < len(parents):
        return False
    if len({(parent.tag, parent.get("class")) for parent in parents}) != 1:
        return False
    if any(other in block.iterancestors() for block in blocks for other in blocks):
        return False
    elements = list(tree.iter())
    position = {element: index for index, element in enumerate(elements)}
    for before, after in itertools.pairwise(blocks):
        end = position[deque(before.iter(), maxlen=1)[0]]
        for element in elements[end + 1 : position[after]]:
            if element.tag in _BODY_TAGS and len(element.text_content().split()) >= _INTERLEAVED_WORDS:
                return False
    return True


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
    """ISO-8601 (or RFC 2822, as some meta tags use) to an aware datetime; naive means UTC."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError):
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
    """The page's first article-typed JSON-LD object, or ``{}``; broken JSON-LD is ignored.

    Many CMSs write HTML entities into JSON-LD strings (``you&#039;ll``); they are decoded.
    """
    for script in tree.xpath('//script[@type="application/ld+json"]'):
        try:
            data = json.loads(script.text or "", strict=False)
        except ValueError:
            continue
        for node in _walk_jsonld(data):
            if _types(node) & _ARTICLE_TYPES:
                unescaped: dict[str, Any] = _unescape(node)
                return unescaped
    return {}


def _unescape(value: Any) -> Any:
    if isinstance(value, str):
        return unescape(value) if "&" in value else value
    if isinstance(value, list):
        return [_unescape(item) for item in value]
    if isinstance(value, dict):
        return {key: _unescape(item) for key, item in value.items()}
    return value


def _names(value: Any) -> tuple[str, ...]:
    """Author names; organisations (the publisher named as author) are not authors."""
    items = value if isinstance(value, list) else [value]
    names: list[str] = []
    for item in items:
        if isinstance(item, dict) and "organization" in _types(item):
            continue
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
    """JSON-LD ``isAccessibleForFree`` (also on ``hasPart``) decides; else the
    ``article:content_tier`` meta tag, else paywall markers in class/id names."""
    free = _is_free(jsonld.get("isAccessibleForFree"))
    if free is None:
        parts = jsonld.get("hasPart")
        for part in parts if isinstance(parts, list) else [parts]:
            if isinstance(part, dict) and _is_free(part.get("isAccessibleForFree")) is False:
                free = False
    if free is not None:
        return not free
    if (_meta(tree, "article:content_tier") or "").lower() == "locked":
        return True
    classes = " ".join(str(c) for c in tree.xpath("//body//@class | //body//@id"))
    return bool(_PAYWALL_MARKERS.search(classes))


def extract(html: bytes | str, url: str | None = None, charset: str | None = None) -> Extracted:
    """Extract one article; raises ``ExtractionFailed`` with a reason when there is none."""
    tree = parse_html(html, charset)
    jsonld = article_jsonld(tree)
    # Structured data first: pruning and trafilatura remove scripts and chrome from the tree.
    facts = _page_facts(tree, jsonld)
    prune_boilerplate(tree)
    rejoin_split_body(tree)
    body, doc = extract_body(tree, url, facts.titles, _first_str(jsonld.get("articleBody")))
    if len(body.split()) < MIN_BODY_WORDS:
        raise ExtractionFailed("no_main_content", f"{len(body.split())} words: {url or ''}")
    title = next(iter(facts.titles), None) or _doc_str(doc, "title")
    if not title:
        raise ExtractionFailed("no_title", url or "")
    language = facts.language or _doc_str(doc, "language")
    return Extracted(
        title=title,
        body=body,
        description=facts.description or _doc_str(doc, "description"),
        authors=facts.authors or _split_authors(_doc_str(doc, "author")),
        published_at=facts.published or parse_datetime(_doc_str(doc, "date")),
        modified_at=facts.modified,
        site_name=facts.site_name or _doc_str(doc, "sitename"),
        language=language.split("-")[0].split("_")[0].lower() if language else None,
        categories=_unique(
            [
                *facts.categories,
                *_listify(getattr(doc, "categories", None)),
                *_listify(getattr(doc, "tags", None)),
            ]
        ),
        top_image=facts.top_image or _doc_str(doc, "image"),
        canonical_url=facts.canonical,
        paywalled=facts.paywalled or _truncated(body, jsonld),
    )


def parse_html(html: bytes | str, charset: str | None = None) -> Any:
    """Decode and parse a page; rejects what is too large, empty, binary or unparseable."""
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
    # Server-rendered pages split text nodes with empty comments (``When <!-- -->President``);
    # trafilatura drops comments together with their tail text, so strip them keeping the tails.
    etree.strip_tags(tree, etree.Comment)
    return tree


def extract_body(
    tree: Any, url: str | None, titles: Sequence[str] = (), jsonld_body: str | None = None
) -> tuple[str, Any]:
    """The article text of a (pruned) tree, and trafilatura's document for its metadata.

    trafilatura's precision mode keeps out most furniture but sometimes drops the article and
    keeps a stray box; when it finds less than half of what the default mode finds, the default
    mode's text is used. A JSON-LD ``articleBody`` that contains (nearly) everything extracted and
    clearly more is the publisher's own full text and wins. A headline repeated at the top is dropped:
    the title is a field of its own.
    """
    precise = trafilatura.bare_extraction(
        copy.deepcopy(tree),
        url=url,
        with_metadata=True,
        include_comments=False,
        include_tables=True,
        favor_precision=True,
    )
    body = _doc_str(precise, "text") or ""
    page = tree.find("body")
    words = len(body.split())
    # The default mode cannot find more than the page shows: skip it when it could not win.
    if page is not None and words < _PRECISION_FALLBACK_SHARE * _visible_words(page):
        default = trafilatura.bare_extraction(
            tree, url=url, with_metadata=False, include_comments=False, include_tables=True
        )
        fuller = _doc_str(default, "text") or ""
        if words < _PRECISION_FALLBACK_SHARE * len(fuller.split()):
            body = fuller
    body = drop_leading_titles(body, titles)
    if jsonld_body and _is_clean_superset(jsonld_body, body):
        body = jsonld_body
    return drop_calls_to_action(body), precise


def _is_clean_superset(candidate: str, extracted: str) -> bool:
    """``candidate`` holds nearly every 4-word shingle of ``extracted`` and clearly more."""
    have, extra = _shingles(extracted), _shingles(candidate)
    if not have:
        return bool(extra)
    covered = sum(min(count, extra[key]) for key, count in have.items())
    return covered >= _SUPERSET_COVERAGE * sum(have.values()) and sum(
        extra.values()
    ) > _SUPERSET_GROWTH * sum(have.values())


def _shingles(text: str) -> Counter[tuple[str, ...]]:
    tokens = _WORD.findall(text.lower())
    return Counter(tuple(tokens[i : i + 4]) for i in range(max(0, len(tokens) - 3)))


def drop_leading_titles(body: str, titles: Sequence[str]) -> str:
    """Remove the headline (or a kicker contained in it) where it opens the body."""
    known = [_normalise(t) for t in titles if _normalise(t)]
    lines = body.split("\n")
    while lines:
        first = _normalise(lines[0])
        repeated = any(first == t or (len(first) >= _MIN_KICKER_CHARS and first in t) for t in known)
        if first and not repeated:
            break
        lines.pop(0)
    return "\n".join(lines).strip()


def _normalise(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


@dataclass(frozen=True)
class _Facts:
    """What structured data and ``<meta>`` say about the page, before trafilatura runs."""

    titles: tuple[str, ...]
    description: str | None
    authors: tuple[str, ...]
    published: datetime | None
    modified: datetime | None
    site_name: str | None
    language: str | None
    categories: tuple[str, ...]
    top_image: str | None
    canonical: str | None
    paywalled: bool


def _page_facts(tree: Any, jsonld: dict[str, Any]) -> _Facts:
    publisher = jsonld.get("publisher")
    return _Facts(
        titles=_unique(
            [
                _meta(tree, "og:title"),
                _first_str(jsonld.get("headline")),
                _meta(tree, "twitter:title"),
                " ".join(" ".join(tree.xpath("//h1[1]//text()")).split()),
                _first_str(tree.xpath("//head/title/text()")),
            ]
        ),
        description=_first_str(jsonld.get("description"))
        or _meta(tree, "description", "og:description", "twitter:description"),
        authors=_names(jsonld.get("author"))
        or tuple(a for a in _split_authors(_meta(tree, "author", "article:author")) if "://" not in a),
        published=parse_datetime(jsonld.get("datePublished"))
        or parse_datetime(_meta(tree, "article:published_time", "og:published_time", "datePublished", "date"))
        or parse_datetime(_first_str(tree.xpath("//time[@pubdate]/@datetime"))),
        modified=parse_datetime(jsonld.get("dateModified"))
        or parse_datetime(_meta(tree, "article:modified_time", "og:updated_time", "dateModified")),
        site_name=_first_str(publisher.get("name") if isinstance(publisher, dict) else None)
        or _meta(tree, "og:site_name", "application-name"),
        language=_first_str(jsonld.get("inLanguage"))
        or _first_str(tree.xpath("/html/@lang"))
        or _meta(tree, "og:locale", "content-language", "language")
        or _first_str(tree.xpath('//meta[@http-equiv="content-language"]/@content')),
        categories=_unique(
            [
                *_listify(jsonld.get("articleSection")),
                *_listify(jsonld.get("keywords")),
                *(str(v) for v in tree.xpath('//meta[@property="article:section"]/@content')),
                *(str(v) for v in tree.xpath('//meta[@property="article:tag"]/@content')),
                *_listify(_meta(tree, "news_keywords", "keywords")),
            ]
        ),
        top_image=_image_url(jsonld.get("image")) or _meta(tree, "og:image", "twitter:image"),
        canonical=_first_str(tree.xpath('//link[@rel="canonical"]/@href')) or _meta(tree, "og:url"),
        paywalled=_paywalled(tree, jsonld),
    )


def _image_url(value: Any) -> str | None:
    """JSON-LD ``image``: a URL, an ImageObject or a list of either."""
    if isinstance(value, list):
        return next((url for url in map(_image_url, value) if url), None)
    if isinstance(value, dict):
        return _first_str(value.get("url") or value.get("contentUrl"))
    return _first_str(value)


def _truncated(body: str, jsonld: dict[str, Any]) -> bool:
    """The page states a word count far above what it shows: the rest is behind a wall."""
    stated = jsonld.get("wordCount")
    try:
        words = int(stated) if isinstance(stated, int | str) else 0
    except ValueError:
        return False
    return words > _TRUNCATION_FACTOR * len(body.split())


def _doc_str(doc: Any, name: str) -> str | None:
    return _first_str(getattr(doc, name, None)) if doc is not None else None


def _first_str(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    return value.strip() if isinstance(value, str) and value.strip() else None


def _unique(values: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v.strip() for v in values if v and v.strip()))


def _listify(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, str):
        return value.split(",")
    return []


def _split_authors(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(a.strip() for a in re.split(r";|,| und | and ", value) if a.strip())
