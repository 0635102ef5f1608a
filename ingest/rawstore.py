"""Raw HTML archive: the fetched bytes of every emitted article, gzip-compressed on disk.

Extraction improves over time; keeping what was fetched lets ``newsflow reextract`` rebuild
articles with the current extractor without fetching again (publishers change or remove pages).
Layout: ``<dir>/<id[:2]>/<article id>/<sha256(html)[:16]>.html.gz`` plus a ``.json`` sidecar
(the link message, final URL, charset, fetch time and the body hash that was emitted). Keying by
content hash stores an unchanged re-fetch once and keeps each changed version. Writes go to a
temporary file renamed into place, so a crash never leaves a truncated entry. Off unless
``NEWSFLOW_INGEST_RAW_HTML_DIR`` is set.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from newsflow.schemas import Article, LinkMessage
from newsflow.settings import IngestSettings

_SUFFIX = ".html.gz"


@dataclass(frozen=True)
class RawPage:
    """One archived fetch of an article."""

    article_id: str
    link: LinkMessage
    url: str
    charset: str | None
    fetched_at: datetime
    body_hash: str
    path: Path

    def html(self) -> bytes:
        return gzip.decompress(self.path.read_bytes())


class RawStore:
    """Write and read archived pages under one directory."""

    def __init__(self, root: Path, compresslevel: int = 6) -> None:
        self.root = root
        self.compresslevel = compresslevel

    @classmethod
    def from_settings(cls, settings: IngestSettings) -> RawStore | None:
        """The configured archive, or ``None`` when raw HTML is not kept."""
        if settings.raw_html_dir is None:
            return None
        return cls(settings.raw_html_dir, settings.raw_html_compresslevel)

    def _folder(self, article_id: str) -> Path:
        return self.root / article_id[:2] / article_id

    def put(self, article: Article, link: LinkMessage, html: bytes, charset: str | None) -> Path:
        """Archive the page ``article`` came from; an identical page already archived is kept as is."""
        folder = self._folder(article.article_id)
        path = folder / f"{hashlib.sha256(html).hexdigest()[:16]}{_SUFFIX}"
        if path.exists():
            return path
        folder.mkdir(parents=True, exist_ok=True)
        meta = {
            "article_id": article.article_id,
            "link": link.model_dump(mode="json"),
            "url": article.url,
            "charset": charset,
            "fetched_at": article.fetched_at.isoformat(),
            "body_hash": article.body_hash,
        }
        _atomic_write(path.with_suffix("").with_suffix(".json"), json.dumps(meta).encode("utf-8"))
        _atomic_write(path, gzip.compress(html, compresslevel=self.compresslevel, mtime=0))
        return path

    def versions(self, article_id: str) -> list[RawPage]:
        """Every archived fetch of an article, oldest first."""
        folder = self._folder(article_id)
        pages = [_load(path) for path in folder.glob(f"*{_SUFFIX}")] if folder.is_dir() else []
        return sorted(pages, key=lambda page: page.fetched_at)

    def latest(self) -> Iterator[RawPage]:
        """The newest fetch of each archived article, in article-id order."""
        for folder in sorted(p for p in self.root.glob("*/*") if p.is_dir()):
            versions = self.versions(folder.name)
            if versions:
                yield versions[-1]


def _load(path: Path) -> RawPage:
    meta = json.loads(path.with_suffix("").with_suffix(".json").read_text(encoding="utf-8"))
    return RawPage(
        article_id=meta["article_id"],
        link=LinkMessage.model_validate(meta["link"]),
        url=meta["url"],
        charset=meta.get("charset"),
        fetched_at=datetime.fromisoformat(meta["fetched_at"]),
        body_hash=meta["body_hash"],
        path=path,
    )


def _atomic_write(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
