"""OPML import and export, the format feed readers and other aggregators exchange feed lists in.

Standard attributes (``xmlUrl``, ``type``, ``text``/``title``, ``language``) carry most of a
``FeedSpec``; the interval bounds and ``enabled`` travel as extra outline attributes, which OPML 2.0
allows, so an export re-imports to the same registry.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import get_args
from urllib.parse import urlsplit

from lxml import etree

from ingest.feeds import FeedKind, FeedSpec

_KINDS: dict[str, FeedKind] = {kind: kind for kind in get_args(FeedKind)}
_DEFAULTS = FeedSpec(url="x", publisher="x")


class OpmlError(ValueError):
    """The file is not OPML we can read."""


def parse_opml(data: bytes) -> list[FeedSpec]:
    """Every outline with an ``xmlUrl``, at any depth (readers nest feeds in folders)."""
    try:
        root = etree.fromstring(
            data, parser=etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
        )
    except etree.XMLSyntaxError as exc:
        raise OpmlError(f"not well-formed XML: {exc}") from exc
    if root.tag != "opml":
        raise OpmlError(f"root element is <{root.tag}>, not <opml>")
    feeds: dict[str, FeedSpec] = {}
    for outline in root.iter("outline"):
        url = (outline.get("xmlUrl") or "").strip()
        if not url or urlsplit(url).scheme not in {"http", "https"}:
            continue
        kind = (outline.get("type") or "rss").strip().lower()
        name = outline.get("text") or outline.get("title") or urlsplit(url).hostname or url
        try:
            feeds[url] = FeedSpec(
                url=url,
                kind=_KINDS.get(kind, "rss"),
                publisher=name.strip(),
                language=outline.get("language") or None,
                min_interval_s=float(outline.get("minInterval") or _DEFAULTS.min_interval_s),
                max_interval_s=float(outline.get("maxInterval") or _DEFAULTS.max_interval_s),
                enabled=(outline.get("enabled") or "true").lower() != "false",
            )
        except ValueError as exc:
            raise OpmlError(f"outline {url}: {exc}") from exc
    return list(feeds.values())


def to_opml(feeds: Sequence[FeedSpec], title: str = "newsflow feeds") -> bytes:
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = title
    etree.SubElement(head, "dateCreated").text = format_datetime(datetime.now(UTC))
    body = etree.SubElement(root, "body")
    for feed in feeds:
        outline = etree.SubElement(
            body, "outline", type=feed.kind, text=feed.publisher, title=feed.publisher, xmlUrl=feed.url
        )
        if feed.language:
            outline.set("language", feed.language)
        if feed.min_interval_s != _DEFAULTS.min_interval_s:
            outline.set("minInterval", f"{feed.min_interval_s:g}")
        if feed.max_interval_s != _DEFAULTS.max_interval_s:
            outline.set("maxInterval", f"{feed.max_interval_s:g}")
        if not feed.enabled:
            outline.set("enabled", "false")
    result: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return result
