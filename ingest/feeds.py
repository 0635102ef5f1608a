"""The declarative feed registry: a YAML file users edit, review and version."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

# "rss" and "atom" (and "json-feed") only document what the URL serves: the poller reads RSS, RDF,
# Atom and JSON Feed documents under any of them; sitemaps are parsed as sitemaps.
FeedKind = Literal["rss", "atom", "json-feed", "news-sitemap", "sitemap"]
FEED_KINDS: tuple[str, ...] = get_args(FeedKind)


class FeedSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    kind: FeedKind = "rss"
    publisher: str
    language: str | None = Field(
        default=None, description="Language hint (ISO 639-1), a prior for detection."
    )
    min_interval_s: float = Field(default=120.0, gt=0)
    max_interval_s: float = Field(default=3600.0, gt=0)
    enabled: bool = True

    @model_validator(mode="after")
    def _bounds(self) -> FeedSpec:
        if self.min_interval_s > self.max_interval_s:
            raise ValueError("min_interval_s must not exceed max_interval_s")
        return self


class FeedRegistry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    feeds: tuple[FeedSpec, ...] = ()

    @classmethod
    def load(cls, path: Path) -> FeedRegistry:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return cls.model_validate(data)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"feeds": [feed.model_dump(exclude_defaults=False) for feed in self.feeds]}
        path.write_text(yaml.safe_dump(payload, sort_keys=False, allow_unicode=True), encoding="utf-8")

    def enabled(self) -> tuple[FeedSpec, ...]:
        return tuple(feed for feed in self.feeds if feed.enabled)

    def with_feed(self, feed: FeedSpec) -> FeedRegistry:
        others = tuple(f for f in self.feeds if f.url != feed.url)
        return FeedRegistry(feeds=(*others, feed))

    def without(self, url: str) -> FeedRegistry:
        return FeedRegistry(feeds=tuple(f for f in self.feeds if f.url != url))
