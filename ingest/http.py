"""Our HTTP client: bounded in time, size and redirects, SSRF-safe, with conditional GET.

feedparser's own fetching has no timeouts, so every byte newsflow reads comes through here.
Failures map to the loop's fates: transient ones (timeouts, 5xx, 429) are ``RetryableError``,
everything else a counted ``SkipMessage`` with a stable reason. ``HttpClient`` serves the fetch
stage (threads); ``AsyncHttpClient`` the poller (thousands of feeds on one event loop). Both share
every rule below, so a limit holds the same way for pages and feeds.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from newsflow.errors import RetryableError, SkipMessage
from newsflow.settings import HttpSettings

_REDIRECTS = {301, 302, 303, 307, 308}


class FetchSkipped(SkipMessage):
    """A fetch that will not succeed by retrying (4xx, too large, blocked address, ...)."""


class FetchRetryable(RetryableError):
    """A fetch that may succeed later (timeout, connection refused, 5xx, 429)."""


@dataclass(frozen=True)
class FetchResult:
    url: str
    final_url: str
    status: int
    headers: dict[str, str]
    body: bytes
    fetched_at: datetime
    elapsed_s: float
    not_modified: bool = False

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def charset(self) -> str | None:
        for part in self.headers.get("content-type", "").split(";")[1:]:
            name, _, value = part.strip().partition("=")
            if name.lower() == "charset" and value:
                return value.strip("\"'").lower()
        return None


@dataclass(frozen=True)
class Validators:
    """What a conditional GET sends back to the server."""

    etag: str | None = None
    last_modified: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class _Rules:
    """The limits and guards both clients apply; only the I/O differs between them."""

    def __init__(self, settings: HttpSettings) -> None:
        self.settings = settings

    def client_options(self) -> dict[str, Any]:
        timeout = httpx.Timeout(
            connect=self.settings.connect_timeout_s,
            read=self.settings.read_timeout_s,
            write=self.settings.read_timeout_s,
            pool=self.settings.connect_timeout_s,
        )
        headers = {"User-Agent": self.settings.user_agent, "Accept-Encoding": "gzip, deflate, br"}
        return {"timeout": timeout, "follow_redirects": False, "headers": headers}

    @staticmethod
    def request_headers(validators: Validators | None, accept: str) -> dict[str, str]:
        headers = {"Accept": accept}
        if validators and validators.etag:
            headers["If-None-Match"] = validators.etag
        if validators and validators.last_modified:
            headers["If-Modified-Since"] = validators.last_modified
        return headers

    def target_host(self, url: str) -> tuple[str, int] | None:
        """(host, port) to resolve and check, or None when the target is exempt from the guard."""
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"}:
            raise FetchSkipped("unsupported_scheme", url)
        host = parts.hostname
        if not host:
            raise FetchSkipped("invalid_url", url)
        if self.settings.allow_private_networks or host in self.settings.allowed_hosts:
            return None
        return host, parts.port or (443 if parts.scheme == "https" else 80)

    def check_addresses(self, host: str, infos: list[Any]) -> None:
        for info in infos:
            address = str(info[4][0])
            if address in self.settings.allowed_hosts:
                continue
            if not is_public_address(address):
                raise FetchSkipped("blocked_address", f"{host} resolves to {address}")

    @staticmethod
    def next_hop(current: str, response: httpx.Response, seen: set[str]) -> str | None:
        """The redirect target, or None when the response is final; a loop is refused."""
        if response.status_code not in _REDIRECTS or "location" not in response.headers:
            return None
        nxt = urljoin(current, response.headers["location"])
        if nxt in seen:
            raise FetchSkipped("redirect_loop", f"{current} -> {nxt}")
        return nxt

    def check_declared_length(self, response: httpx.Response) -> None:
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.settings.max_bytes:
            raise FetchSkipped("too_large", f"Content-Length {declared} > {self.settings.max_bytes}")

    def check_progress(self, size: int, started: float) -> None:
        if size > self.settings.max_bytes:
            raise FetchSkipped("too_large", f"more than {self.settings.max_bytes} bytes")
        if time.monotonic() - started > self.settings.total_timeout_s:
            raise FetchRetryable("timeout", f"slower than {self.settings.total_timeout_s}s in total")

    @staticmethod
    def result(
        url: str, final_url: str, response: httpx.Response, body: bytes, started: float
    ) -> FetchResult:
        status = response.status_code
        if status == 429 or status >= 500:
            raise FetchRetryable(f"http_{status}", final_url)
        if status >= 400:
            raise FetchSkipped(f"http_{status}", final_url)
        return FetchResult(
            url=url,
            final_url=final_url,
            status=status,
            headers={k.lower(): v for k, v in response.headers.items()},
            body=body,
            fetched_at=datetime.now(UTC),
            elapsed_s=time.monotonic() - started,
            not_modified=status == 304,
        )

    @staticmethod
    def transport_error(current: str, exc: Exception) -> FetchRetryable | FetchSkipped:
        if isinstance(exc, httpx.TimeoutException):
            return FetchRetryable("timeout", f"{current}: {type(exc).__name__}")
        if isinstance(exc, httpx.DecodingError):
            return FetchSkipped("content_decoding_error", f"{current}: {exc}")
        return FetchRetryable("connection_error", f"{current}: {exc}")


_HTTPX_ERRORS = (httpx.TimeoutException, httpx.TransportError, httpx.DecodingError)


class HttpClient:
    """Synchronous client for the fetch stage; one per thread."""

    def __init__(self, settings: HttpSettings) -> None:
        self.settings = settings
        self._rules = _Rules(settings)
        self._client = httpx.Client(**self._rules.client_options())

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def check_target(self, url: str) -> None:
        """Refuse non-HTTP schemes and, unless allowed, hosts that resolve to non-public addresses."""
        target = self._rules.target_host(url)
        if target is None:
            return
        try:
            infos = socket.getaddrinfo(*target)
        except socket.gaierror as exc:
            raise FetchRetryable("dns_failure", f"{target[0]}: {exc}") from exc
        self._rules.check_addresses(target[0], infos)

    def get(self, url: str, validators: Validators | None = None, accept: str = "*/*") -> FetchResult:
        """GET with manual redirects (each hop re-checked), a byte cap and a total deadline."""
        started = time.monotonic()
        headers = self._rules.request_headers(validators, accept)
        current = url
        seen: set[str] = set()
        for _ in range(self.settings.max_redirects + 1):
            self.check_target(current)
            seen.add(current)
            try:
                with self._client.stream("GET", current, headers=headers) as response:
                    nxt = self._rules.next_hop(current, response, seen)
                    if nxt is not None:
                        current = nxt
                        continue
                    self._rules.check_declared_length(response)
                    chunks: list[bytes] = []
                    size = 0
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        self._rules.check_progress(size, started)
                        chunks.append(chunk)
                    return self._rules.result(url, current, response, b"".join(chunks), started)
            except _HTTPX_ERRORS as exc:
                raise self._rules.transport_error(current, exc) from exc
        raise FetchSkipped("too_many_redirects", url)


class AsyncHttpClient:
    """The same client on asyncio, for the poller: one instance and one connection pool per process."""

    def __init__(self, settings: HttpSettings, max_connections: int = 100) -> None:
        self.settings = settings
        self._rules = _Rules(settings)
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._client = httpx.AsyncClient(limits=limits, **self._rules.client_options())

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> AsyncHttpClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def check_target(self, url: str) -> None:
        target = self._rules.target_host(url)
        if target is None:
            return
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(*target)
        except socket.gaierror as exc:
            raise FetchRetryable("dns_failure", f"{target[0]}: {exc}") from exc
        self._rules.check_addresses(target[0], infos)

    async def get(self, url: str, validators: Validators | None = None, accept: str = "*/*") -> FetchResult:
        """Like ``HttpClient.get``; the total deadline also covers connecting and redirects."""
        try:
            async with asyncio.timeout(self.settings.total_timeout_s):
                return await self._get(url, validators, accept)
        except TimeoutError as exc:
            raise FetchRetryable("timeout", f"slower than {self.settings.total_timeout_s}s in total") from exc

    async def _get(self, url: str, validators: Validators | None, accept: str) -> FetchResult:
        started = time.monotonic()
        headers = self._rules.request_headers(validators, accept)
        current = url
        seen: set[str] = set()
        for _ in range(self.settings.max_redirects + 1):
            await self.check_target(current)
            seen.add(current)
            try:
                async with self._client.stream("GET", current, headers=headers) as response:
                    nxt = self._rules.next_hop(current, response, seen)
                    if nxt is not None:
                        current = nxt
                        continue
                    self._rules.check_declared_length(response)
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        self._rules.check_progress(size, started)
                        chunks.append(chunk)
                    return self._rules.result(url, current, response, b"".join(chunks), started)
            except _HTTPX_ERRORS as exc:
                raise self._rules.transport_error(current, exc) from exc
        raise FetchSkipped("too_many_redirects", url)
