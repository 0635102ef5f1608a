"""Loopback HTTP server for the offline demo news site.

The demo, the tests and the benchmarks need realistic feeds and article pages without touching the
internet. Serving them over a real socket (instead of mocking the HTTP client) exercises the same code
path as production: content types, charsets, conditional requests, redirects and timeouts.
"""

from __future__ import annotations

import hashlib
import logging
import re
import socketserver
import threading
from collections.abc import Callable
from email.utils import formatdate, parsedate_to_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import cast
from urllib.parse import unquote, urlsplit

__all__ = ["PLACEHOLDER", "RouteHandler", "SiteServer", "demo_site_root"]

logger = logging.getLogger(__name__)

#: Written in feeds and pages instead of an origin, because the port is only known once the server is bound.
PLACEHOLDER = b"{{BASE_URL}}"

#: A test-registered handler owns the whole response (status, headers, body) for its path.
RouteHandler = Callable[[BaseHTTPRequestHandler], None]

_CONTENT_TYPES = {
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".xml": "application/xml",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
}
_HTML_SUFFIXES = frozenset({".html", ".htm"})
# Binary files must not be touched by the placeholder substitution.
_TEXT_SUFFIXES = _HTML_SUFFIXES | {".rss", ".atom", ".xml", ".json", ".txt", ".css", ".js", ".svg"}
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_UTF8_NAMES = frozenset({"utf-8", "utf8"})


def demo_site_root() -> Path:
    """Directory of the packaged demo site (feeds/, articles/, amp/, expected.json)."""
    return Path(__file__).resolve().parent / "site"


def _html_content_type(body: bytes) -> str:
    """Like many real sites, a page declaring a legacy charset in <meta> gets no charset in the header.

    Clients then have to honour the in-document declaration, which is what the extractor must cope with.
    """
    match = _META_CHARSET.search(body[:2048])
    if match is not None and match.group(1).decode("ascii").lower() not in _UTF8_NAMES:
        return "text/html"
    return "text/html; charset=utf-8"


def _etag_matches(header: str, etag: str) -> bool:
    """Weak comparison (RFC 9110 13.1.2): a W/ prefix on either side does not prevent a match."""
    wanted = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in wanted or etag in wanted


class _HTTPServer(ThreadingHTTPServer):
    """Threaded server that knows its SiteServer, so handlers need no global state."""

    daemon_threads = True  # a slow test route must not keep stop() or interpreter exit waiting

    def __init__(self, address: tuple[str, int], site: SiteServer) -> None:
        self.site = site
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        """Skip HTTPServer's getfqdn() reverse lookup, which can stall for seconds on hosts without DNS."""
        socketserver.TCPServer.server_bind(self)
        self.server_name = self.site.host
        self.server_port = self.socket.getsockname()[1]

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients that time out or hang up mid-response are normal in tests; keep tracebacks off stderr."""
        logger.debug("demo site: error while handling %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    """Serves files from the site root, or delegates to a registered route."""

    server_version = "newsflow-demo/1.0"

    @property
    def site(self) -> SiteServer:
        return cast(_HTTPServer, self.server).site

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def log_message(self, format: str, *args: object) -> None:
        """Route the access log to logging at DEBUG instead of stderr, so test output stays readable."""
        logger.debug("demo site: " + format, *args)

    def _dispatch(self) -> None:
        site = self.site
        site._record(self.command, self.path)
        path = urlsplit(self.path).path
        route = site._route_for(path)
        if route is not None:
            route(self)
            return
        if self.command not in {"GET", "HEAD"}:
            self.send_error(HTTPStatus.METHOD_NOT_ALLOWED)
            return
        self._serve_file(path)

    def _serve_file(self, url_path: str) -> None:
        site = self.site
        file = site._resolve(url_path)
        if file is None:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        body = file.read_bytes()
        suffix = file.suffix.lower()
        if suffix in _TEXT_SUFFIXES:
            # Byte-level, so pages in legacy encodings (ISO-8859-1) stay byte-for-byte valid.
            body = body.replace(PLACEHOLDER, site.base_url.encode("ascii"))
        if suffix in _HTML_SUFFIXES:
            content_type = _html_content_type(body)
        else:
            content_type = _CONTENT_TYPES.get(suffix, "application/octet-stream")
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        mtime = int(file.stat().st_mtime)
        last_modified = formatdate(mtime, usegmt=True)

        if self._not_modified(etag, mtime):
            self.send_response(HTTPStatus.NOT_MODIFIED)
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", last_modified)
            self.end_headers()
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", last_modified)
        # Clients must revalidate, so repeated fetches exercise the conditional-GET path.
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _not_modified(self, etag: str, mtime: int) -> bool:
        """If-None-Match wins over If-Modified-Since when both are sent (RFC 9110 13.2.2)."""
        if_none_match = self.headers.get("If-None-Match")
        if if_none_match is not None:
            return _etag_matches(if_none_match, etag)
        if_modified_since = self.headers.get("If-Modified-Since")
        if if_modified_since is None:
            return False
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False  # unparseable dates are ignored, as the RFC asks
        if since.tzinfo is None:
            return False
        return mtime <= since.timestamp()


class SiteServer:
    """Serves a directory of feeds and pages on loopback, with hooks for tests.

    Use as a context manager (``with SiteServer(demo_site_root()) as site: ...``) or call
    ``start()``/``stop()``. ``{{BASE_URL}}`` in served text files becomes ``base_url``.
    """

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise FileNotFoundError(f"site root is not a directory: {self.root}")
        self.host = host
        self._port = port
        self._routes: dict[str, RouteHandler] = {}
        self._lock = threading.Lock()
        #: (method, raw request target incl. query) of every request, in arrival order. Appended under a lock
        #: from handler threads; take ``list(server.request_log)`` for a stable snapshot.
        self.request_log: list[tuple[str, str]] = []
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """Origin of the running server, e.g. ``http://127.0.0.1:41234``; known only after start()."""
        if self._httpd is None:
            raise RuntimeError("SiteServer is not running; call start() first")
        return f"http://{self.host}:{self._httpd.server_port}"

    def url(self, path: str) -> str:
        """Absolute URL for a site path such as ``/feeds/world-en.rss``."""
        return self.base_url + "/" + path.lstrip("/")

    def start(self) -> SiteServer:
        if self._httpd is not None:
            raise RuntimeError("SiteServer is already running")
        httpd = _HTTPServer((self.host, self._port), self)
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},  # fast stop() in tests that start many servers
            name=f"SiteServer-{httpd.server_port}",
            daemon=True,
        )
        self._httpd = httpd
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> SiteServer:
        return self if self._httpd is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def add_route(self, path: str, handler: RouteHandler) -> None:
        """Let a test own the response for ``path`` (query string ignored): slow, huge, redirects, errors.

        Routes take precedence over files, may be added while running, and receive every method.
        """
        if not path.startswith("/"):
            raise ValueError(f"route path must start with '/': {path!r}")
        with self._lock:
            self._routes[path] = handler

    def _route_for(self, path: str) -> RouteHandler | None:
        with self._lock:
            return self._routes.get(path)

    def _record(self, method: str, target: str) -> None:
        with self._lock:
            self.request_log.append((method, target))

    def _resolve(self, url_path: str) -> Path | None:
        """Map a URL path to a file under root; None for anything missing or outside root."""
        relative = unquote(url_path).lstrip("/")
        try:
            candidate = (self.root / relative).resolve()
        except (OSError, ValueError):  # NUL bytes, overly long names
            return None
        if not candidate.is_relative_to(self.root):
            return None
        if candidate.is_dir():
            candidate = candidate / "index.html"
        return candidate if candidate.is_file() else None
