"""Politeness towards the sites we poll: robots.txt (RFC 9309), per-host concurrency and spacing.

Thousands of feeds often sit on a handful of hosts; without these limits one pass of the poller
would hit each host with dozens of simultaneous requests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

from ingest.http import AsyncHttpClient, FetchRetryable, FetchSkipped

ROBOTS_MAX_BYTES = 500 * 1024  # RFC 9309 2.5: parse at least the first 500 KiB
MAX_CRAWL_DELAY_S = 60.0  # a Crawl-delay beyond this would starve a news feed; honour up to here


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def agent_token(user_agent: str) -> str:
    """The product token robots.txt groups are matched against ("newsflow/0.1 (...)" -> "newsflow")."""
    return user_agent.split("/", 1)[0].split(maxsplit=1)[0] if user_agent.strip() else "*"


@dataclass(frozen=True)
class _Rules:
    parser: RobotFileParser | None  # None: no usable rules, allow all unless unavailable
    unavailable: bool
    expires_at: float


class RobotsCache:
    """robots.txt per origin, cached for a TTL; one fetch per origin even under concurrency.

    Per RFC 9309: a 4xx (no robots.txt) allows everything; a server error (5xx, 429) disallows
    everything (``robots_unavailable``) until a shorter retry TTL expires. A network failure is
    raised as it is, so the feed is counted with its real reason (timeout, dns_failure, ...).
    """

    def __init__(
        self,
        http: AsyncHttpClient,
        user_agent: str,
        ttl_s: float = 86_400.0,
        error_ttl_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.http = http
        self.agent = agent_token(user_agent)
        self.ttl_s = ttl_s
        self.error_ttl_s = error_ttl_s
        self.clock = clock
        self._rules: dict[str, _Rules] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.fetches = 0

    async def allowed(self, url: str) -> bool:
        """Whether robots.txt lets us fetch ``url``; raises ``robots_unavailable`` on server errors."""
        site = origin(url)
        rules = await self._for(site)
        if rules.unavailable:
            raise FetchRetryable("robots_unavailable", f"{site}/robots.txt answers with a server error")
        return rules.parser is None or rules.parser.can_fetch(self.agent, url)

    def crawl_delay(self, url: str) -> float | None:
        """The cached Crawl-delay for this URL's origin (capped), if the site sets one."""
        rules = self._rules.get(origin(url))
        if rules is None or rules.parser is None:
            return None
        delay = rules.parser.crawl_delay(self.agent)
        return min(float(delay), MAX_CRAWL_DELAY_S) if delay is not None else None

    async def _for(self, site: str) -> _Rules:
        async with self._locks.setdefault(site, asyncio.Lock()):
            cached = self._rules.get(site)
            if cached is None or cached.expires_at <= self.clock():
                cached = self._rules[site] = await self._fetch(site)
            return cached

    async def _fetch(self, site: str) -> _Rules:
        self.fetches += 1
        now = self.clock()
        try:
            fetched = await self.http.get(f"{site}/robots.txt", accept="text/plain, */*;q=0.5")
        except FetchRetryable as exc:
            if not exc.reason.startswith("http_"):
                raise
            return _Rules(None, unavailable=True, expires_at=now + self.error_ttl_s)
        except FetchSkipped:
            # 4xx, too large, undecodable, redirect loop: no usable rules, so none apply.
            return _Rules(None, unavailable=False, expires_at=now + self.ttl_s)
        parser = RobotFileParser()
        text = fetched.body[:ROBOTS_MAX_BYTES].decode("utf-8", errors="replace")
        parser.parse(text.splitlines())
        return _Rules(parser, unavailable=False, expires_at=now + self.ttl_s)


class HostLimiter:
    """At most ``per_host`` requests in flight per host, and request starts spaced by a delay."""

    def __init__(self, per_host: int, min_delay_s: float) -> None:
        self.per_host = per_host
        self.min_delay_s = min_delay_s
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._next_start: dict[str, float] = {}

    @asynccontextmanager
    async def slot(self, url: str, delay_s: float | None = None) -> AsyncIterator[None]:
        host = urlsplit(url).netloc.lower()
        semaphore = self._slots.setdefault(host, asyncio.Semaphore(self.per_host))
        async with semaphore:
            loop = asyncio.get_running_loop()
            now = loop.time()
            # Reserve the start time before sleeping, so waiters queue up one delay apart.
            start = max(now, self._next_start.get(host, now))
            self._next_start[host] = start + max(self.min_delay_s, delay_s or 0.0)
            if start > now:
                await asyncio.sleep(start - now)
            yield
