"""Shared helpers of the alert tests: enriched articles, a webhook receiver and an SMTP server on 127.0.0.1.

(Named ``test_alerts_*`` to stay with the alert tests; it defines no tests itself.)
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from newsflow.schemas import Article, EnrichedArticle, Entity, TopicScore

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def enriched(
    n: int,
    title: str,
    body: str = "",
    *,
    source: str = "example.org",
    story: str | None = None,
    entities: tuple[tuple[str, str, tuple[str, ...]], ...] = (),
    topics: tuple[tuple[str, float], ...] = (),
    language: str = "en",
    revision: int = 1,
    description: str | None = None,
    published: datetime | None = None,
) -> EnrichedArticle:
    url = f"https://{source}/news/{n}"
    return EnrichedArticle(
        article=Article(
            article_id=hashlib.sha256(url.encode()).hexdigest(),
            url=url,
            canonical_url=url,
            title=title,
            body=body or title,
            description=description,
            published_at=published or T0 + timedelta(minutes=n),
            source_domain=source,
            publisher=source,
            body_hash=hashlib.sha256(body.encode()).hexdigest(),
            revision=revision,
            fetched_at=T0 + timedelta(minutes=n, seconds=30),
        ),
        language=language,
        language_confidence=0.99,
        entities=tuple(
            Entity(name=name, label=label, mentions=1, first_offset=0, in_title=False, surface_forms=forms)  # type: ignore[arg-type]
            for name, label, forms in entities
        ),
        topics=tuple(TopicScore(name=name, score=score) for name, score in topics),
        story_id=story,
        enriched_at=T0 + timedelta(minutes=n, seconds=40),
    )


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    acknowledged: bool
    at: float


@dataclass
class Receiver:
    """A webhook receiver: records every request; ``status`` decides the answer; ``on_request`` may
    return False to drop the connection without answering (the sender never learns the outcome)."""

    url: str
    requests: list[Received] = field(default_factory=list)
    status: int = 200
    on_request: Callable[[Received], bool] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def acknowledged(self) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.acknowledged]


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    import time

    receiver = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            request = Received(self.path, dict(self.headers), body, receiver.status < 300, time.time())
            answer = receiver.on_request(request) if receiver.on_request else True
            request.acknowledged = request.acknowledged and answer
            with receiver.lock:
                receiver.requests.append(request)
            if not answer:
                self.close_connection = True
                return
            self.send_response(receiver.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
