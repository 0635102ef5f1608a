"""Our HTTP client: bounded in time, size and redirects, SSRF-safe, with conditional GET.

feedparser's own fetching has no timeouts, so every byte newsflow reads comes through here.
Failures map to the loop's fates: transient ones (timeouts, 5xx, 429) are ``RetryableError``,
everything else a counted ``SkipMessage`` with a stable reason.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
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


class HttpClient:
    """Synchronous client for the fetch stage and the poller; one per thread."""

    def __init__(self, settings: HttpSettings) -> None:
        self.settings = settings
        timeout = httpx.Timeout(
            connect=settings.connect_timeout_s,
            read=settings.read_timeout_s,
            write=settings.read_timeout_s,
            pool=settings.connect_timeout_s,
        )
        self._client = httpx.Client(
            timeout=timeout,
            follow_redirects=False,
            headers={
                "User-Agent": settings.user_agent,
                "Accept-Encoding": "gzip, deflate, br",
            },
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def check_target(self, url: str) -> None:
        """Refuse non-HTTP schemes and, unless allowed, hosts that resolve to non-public addresses."""
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"}:
            raise FetchSkipped("unsupported_scheme", url)
        host = parts.hostname
        if not host:
            raise FetchSkipped("invalid_url", url)
        if self.settings.allow_private_networks or host in self.settings.allowed_hosts:
            return
        try:
            infos = socket.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80))
        except socket.gaierror as exc:
            raise FetchRetryable("dns_failure", f"{host}: {exc}") from exc
        for info in infos:
            address = str(info[4][0])
            if address in self.settings.allowed_hosts:
                continue
            if not is_public_address(address):
                raise FetchSkipped("blocked_address", f"{host} resolves to {address}")

    def get(self, url: str, validators: Validators | None = None, accept: str = "*/*") -> FetchResult:
        """GET with manual redirects (each hop re-checked), a byte cap and a total deadline."""
        started = time.monotonic()
        headers = {"Accept": accept}
        if validators and validators.etag:
            headers["If-None-Match"] = validators.etag
        if validators and validators.last_modified:
            headers["If-Modified-Since"] = validators.last_modified
        current = url
        seen: set[str] = set()
        for _ in range(self.settings.max_redirects + 1):
            self.check_target(current)
            seen.add(current)
            try:
                with self._client.stream("GET", current, headers=headers) as response:
                    if response.status_code in _REDIRECTS and "location" in response.headers:
                        nxt = urljoin(current, response.headers["location"])
                        if nxt in seen:
                            raise FetchSkipped("redirect_loop", f"{current} -> {nxt}")
                        current = nxt
                        continue
                    body = self._read_capped(response, started)
                    return self._result(url, current, response, body, started)
            except httpx.TimeoutException as exc:
                raise FetchRetryable("timeout", f"{current}: {type(exc).__name__}") from exc
            except httpx.TransportError as exc:
                raise FetchRetryable("connection_error", f"{current}: {exc}") from exc
            except httpx.DecodingError as exc:
                raise FetchSkipped("content_decoding_error", f"{current}: {exc}") from exc
        raise FetchSkipped("too_many_redirects", url)

    def _read_capped(self, response: httpx.Response, started: float) -> bytes:
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.settings.max_bytes:
            raise FetchSkipped("too_large", f"Content-Length {declared} > {self.settings.max_bytes}")
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self.settings.max_bytes:
                raise FetchSkipped("too_large", f"more than {self.settings.max_bytes} bytes")
            if time.monotonic() - started > self.settings.total_timeout_s:
                raise FetchRetryable("timeout", f"slower than {self.settings.total_timeout_s}s in total")
            chunks.append(chunk)
        return b"".join(chunks)

    def _result(
        self, url: str, final_url: str, response: httpx.Response, body: bytes, started: float
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
