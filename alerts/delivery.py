"""From a match to a delivered alert, exactly once per (rule, story), across workers and restarts.

For each match the sink (run by the stream loop *before* offsets are committed):

1. claims the alert: creates the history document ``_id = alert id`` — only one worker can;
   a later article of the same story finds the document and *joins* it (appended to ``items``);
2. decides: send now, or hold it for a digest (hourly/daily rule, quiet hours, throttle full);
3. sends to each channel with retries and backoff, recording each channel's outcome in the history
   document right after it is acknowledged; a channel that keeps failing goes to the dead-letter
   topic (``newsflow dlq replay`` re-drives it) and never holds up the stream for longer than
   ``delivery_attempts`` times ``timeout_s``.

A worker killed between 1 and 3 leaves a claimed document with an expiring lease; the article is
re-delivered (offsets were not committed) and the next worker takes over after the lease, sending
only what was not yet recorded as delivered.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from kafka import KafkaProducer
from kafka.errors import KafkaError

from alerts.channels import DeliveryError, Rendered, Senders, render
from alerts.history import HistoryStore, Versioned
from alerts.rules import Channel, Rule
from newsflow.errors import RetryableError, StageError
from newsflow.schemas import AlertEvent, AlertItem, DeadLetter, EnrichedArticle
from newsflow.settings import AlertSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Match:
    rule_id: str
    terms: tuple[str, ...]


@dataclass(frozen=True)
class Matches:
    """The alert stage's result: an article and the rules it matched."""

    enriched: EnrichedArticle
    matches: tuple[Match, ...]


def story_key(enriched: EnrichedArticle) -> str:
    """The story an alert is about; an article without a story is its own story."""
    return enriched.story_id or f"article:{enriched.article.article_id}"


def alert_id(rule_id: str, story: str) -> str:
    return hashlib.sha256(f"{rule_id}\n{story}".encode()).hexdigest()[:32]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


def _setting(values: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    """A history change that sets these fields (re-applied by ``HistoryStore.update`` on conflict)."""

    def change(source: dict[str, Any]) -> None:
        source.update(values)

    return change


# --- when to send -------------------------------------------------------------------------------


def _next_local(now: datetime, zone: ZoneInfo, hour: int, minute: int) -> datetime:
    local = now.astimezone(zone)
    candidate = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if candidate <= local:
        candidate += timedelta(days=1)
    return candidate.astimezone(UTC)


def digest_due(rule: Rule, now: datetime, zone: ZoneInfo) -> datetime:
    if rule.digest == "hourly":
        return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return _next_local(now, zone, rule.digest_at.hour, rule.digest_at.minute)


def quiet_until(rule: Rule, now: datetime, zone: ZoneInfo) -> datetime | None:
    """End of the quiet span ``now`` falls in, or None outside quiet hours."""
    quiet = rule.quiet_hours
    if quiet is None:
        return None
    t = now.astimezone(zone).time()
    inside = quiet.start <= t < quiet.end if quiet.start <= quiet.end else (t >= quiet.start or t < quiet.end)
    return _next_local(now, zone, quiet.end.hour, quiet.end.minute) if inside else None


# --- channels with retries ----------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    ok: bool
    attempts: int
    error: str = ""


def deliver(
    send: Callable[[Rendered], None],
    rendered: Rendered,
    settings: AlertSettings,
    sleep: Callable[[float], None],
) -> Outcome:
    delay = settings.backoff_initial_s
    for attempt in range(1, settings.delivery_attempts + 1):
        try:
            send(rendered)
        except DeliveryError as exc:
            if not exc.retryable or attempt == settings.delivery_attempts:
                return Outcome(False, attempt, str(exc)[:500])
            sleep(delay)
            delay = min(delay * 2, settings.backoff_max_s)
        else:
            return Outcome(True, attempt)
    raise AssertionError("unreachable: the last attempt returns")


@dataclass(frozen=True)
class Replay:
    """What the dead letter of a failed delivery re-sends when replayed (``newsflow dlq replay``), and where:
    a single alert replays its article to the enriched topic (the worker then retries only the failed
    channels); a digest replays its ``AlertEvent`` to the alerts topic."""

    stage: str
    topic: str
    message: EnrichedArticle | AlertEvent

    def letter(self, channel: Channel, outcome: Outcome, event: AlertEvent) -> DeadLetter:
        return DeadLetter(
            stage=self.stage,
            source_topic=self.topic,
            partition=-1,  # not a consumed record: the letter is about a delivery
            offset=-1,
            original_key=self.message.key(),
            original_value=self.message.model_dump_json(),
            encoding="utf-8",
            error_type="DeliveryError",
            reason=f"delivery_failed_{channel.type}",
            detail=f"{channel.label} ({event.mode} {event.alert_id}): {outcome.error}",
            attempts=outcome.attempts,
            failed_at=datetime.now(UTC),
        )


class Deliverer:
    """Sends one event to a rule's channels, recording each outcome; failures become dead letters."""

    def __init__(
        self,
        store: HistoryStore,
        senders: Senders,
        producer: KafkaProducer,
        dead_letter_topic: str,
        settings: AlertSettings,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.senders = senders
        self.producer = producer
        self.dead_letter_topic = dead_letter_topic
        self.settings = settings
        self.sleep = sleep

    def send(
        self,
        rule: Rule,
        rendered: Rendered,
        docs: Sequence[Versioned],
        owner: str,
        replay: Replay,
    ) -> bool:
        """Deliver to every channel not yet delivered (per ``docs[0]``); True if all succeeded."""
        done = {d["channel"] for d in docs[0].source.get("deliveries", []) if d["status"] == "delivered"}
        all_ok = True
        for channel in rule.channels:
            if channel.label in done:
                continue
            outcome = deliver(self.senders.for_channel(channel).send, rendered, self.settings, self.sleep)
            record = {
                "channel": channel.label,
                "status": "delivered" if outcome.ok else "failed",
                "attempts": outcome.attempts,
                "error": outcome.error,
                "at": _iso(datetime.now(UTC)),
            }

            def change(source: dict[str, Any], record: dict[str, Any] = record) -> None:
                kept = [d for d in source.get("deliveries", []) if d["channel"] != record["channel"]]
                source["deliveries"] = [*kept, record]

            for doc in docs:
                self.store.update(doc, change, owner)
            if not outcome.ok:
                all_ok = False
                log.warning("alert delivery failed", extra={"channel": channel.label, "error": outcome.error})
                self._dead_letter(replay.letter(channel, outcome, rendered.event))
        return all_ok

    def _dead_letter(self, letter: DeadLetter) -> None:
        try:
            self.producer.send(
                self.dead_letter_topic, key=letter.key(), value=letter.model_dump_json().encode()
            )
            self.producer.flush(timeout=30)
        except KafkaError as exc:
            raise RetryableError("dead_letter_produce_failed", str(exc)) from exc


# --- the sink -----------------------------------------------------------------------------------


class AlertSink:
    """The stream loop's sink for the alert stage; see the module docstring."""

    def __init__(
        self,
        store: HistoryStore,
        rules: Callable[[], Mapping[str, Rule]],
        deliverer: Deliverer,
        source_topic: str,
        settings: AlertSettings,
        worker_id: str | None = None,
        after_batch: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.rules = rules
        self.deliverer = deliverer
        self.source_topic = source_topic
        self.settings = settings
        self.worker_id = worker_id or uuid.uuid4().hex
        self.after_batch = after_batch

    def write(self, results: Sequence[Matches]) -> Sequence[tuple[int, StageError]]:
        rules = self.rules()
        for result in results:
            for match in result.matches:
                rule = rules.get(match.rule_id)
                if rule is not None:  # removed since it matched: nothing to send
                    self.handle(result.enriched, match, rule)
        if self.after_batch is not None:
            self.after_batch()
        return []

    def _lease(self, source: dict[str, Any], now: datetime) -> None:
        source["lease_owner"] = self.worker_id
        source["lease_until"] = _iso(now + timedelta(seconds=self.settings.lease_s))
        source["updated_at"] = _iso(now)

    def handle(self, enriched: EnrichedArticle, match: Match, rule: Rule) -> str:
        """Claim, join or resume the alert of this (rule, story); returns what happened."""
        article = enriched.article
        now = datetime.now(UTC)
        story = story_key(enriched)
        aid = alert_id(rule.id, story)
        item = _item(enriched, match.terms, now)
        source: dict[str, Any] = {
            "doc_type": "alert",
            "alert_id": aid,
            "rule_id": rule.id,
            "rule_name": rule.title,
            "story_id": story,
            "first_article_id": article.article_id,
            "status": "claimed",
            "matched_terms": list(match.terms),
            "items": [item],
            "item_count": 1,
            "created_at": _iso(now),
            "deliveries": [],
        }
        self._lease(source, now)
        doc = self.store.create(aid, source)
        if doc is not None:
            self._fire(rule, doc, enriched, now)
            return "fired"
        for _ in range(10):  # compare-and-set loop against concurrent joins
            doc = self.store.get(aid)
            if doc is None:
                raise RetryableError("alert_history_inconsistent", f"{aid} neither creatable nor readable")
            if doc.source["first_article_id"] != article.article_id:
                items = doc.source["items"]
                if any(i["article_id"] == article.article_id for i in items):
                    return "joined"
                doc.source["items"] = [*items, item]
                doc.source["item_count"] = len(doc.source["items"])
                doc.source["updated_at"] = _iso(now)
                if self.store.replace(doc):
                    return "joined"
                continue
            return self._resume(rule, doc, enriched, now)
        raise RetryableError("alert_history_contended", aid)

    def _resume(self, rule: Rule, doc: Versioned, enriched: EnrichedArticle, now: datetime) -> str:
        """The firing article again (re-delivery after a crash, a revision, a dead-letter replay)."""
        status = str(doc.source["status"])
        if status not in {"claimed", "sending", "failed"}:
            return "already_" + status
        owner, until = doc.source.get("lease_owner"), doc.source.get("lease_until")
        if status != "failed" and owner != self.worker_id and until and _parse(until) > now:
            raise RetryableError("alert_in_flight", f"{doc.doc_id} is being sent by {owner} until {until}")
        self._lease(doc.source, now)
        if not self.store.replace(doc):
            raise RetryableError("alert_taken_over", doc.doc_id)
        self._fire(rule, doc, enriched, now)
        return "resumed"

    def _fire(self, rule: Rule, doc: Versioned, enriched: EnrichedArticle, now: datetime) -> None:
        if doc.source["status"] == "claimed":
            hold = self._hold(rule, doc.doc_id, now)
            if hold is not None:
                held = {
                    "status": "held",
                    "hold_reason": hold[0],
                    "due_at": _iso(hold[1]),
                    "lease_owner": None,
                }
                self.store.update(doc, _setting(held), self.worker_id)
                return
            self.store.update(doc, _setting({"status": "sending", "fired_at": _iso(now)}), self.worker_id)
        event = AlertEvent(
            alert_id=doc.doc_id,
            rule_id=rule.id,
            rule_name=rule.title,
            mode="single",
            items=(AlertItem.model_validate(_wire_item(doc.source["items"][0])),),
            fired_at=_parse(doc.source.get("fired_at") or _iso(now)),
        )

        replay = Replay("alert", self.source_topic, enriched)
        ok = self.deliverer.send(rule, render(rule, event), [doc], self.worker_id, replay)
        done = {
            "status": "delivered" if ok else "failed",
            "lease_owner": None,
            "updated_at": _iso(datetime.now(UTC)),
        }
        self.store.update(doc, _setting(done), self.worker_id)

    def _hold(self, rule: Rule, aid: str, now: datetime) -> tuple[str, datetime] | None:
        zone = ZoneInfo(rule.timezone or self.settings.timezone)
        if rule.digest != "none":
            return rule.digest, digest_due(rule, now, zone)
        quiet = quiet_until(rule, now, zone)
        if quiet is not None:
            return "quiet_hours", quiet
        if rule.throttle is not None:
            return self._throttle(rule, aid, now)
        return None

    def _throttle(self, rule: Rule, aid: str, now: datetime) -> tuple[str, datetime] | None:
        """Fixed windows with ``max_alerts`` slot documents; each slot is claimed by create, so the
        limit holds across workers. A full window holds the alert until the window ends."""
        assert rule.throttle is not None  # noqa: S101 - the caller checked; narrows the type for mypy
        window = rule.throttle.window
        start = int(now.timestamp() // window * window)
        for slot in range(rule.throttle.max_alerts):
            slot_id = f"throttle-{rule.id}-{start}-{slot}"
            claim = {
                "doc_type": "throttle",
                "rule_id": rule.id,
                "alert_id": aid,
                "window_start": _iso(datetime.fromtimestamp(start, UTC)),
                "created_at": _iso(now),
            }
            if self.store.create(slot_id, claim) is not None:
                return None
            existing = self.store.get(slot_id)
            if existing is not None and existing.source.get("alert_id") == aid:
                return None  # claimed by us before a crash
        return "throttle", datetime.fromtimestamp(start + window, UTC)


def _item(enriched: EnrichedArticle, terms: tuple[str, ...], now: datetime) -> dict[str, Any]:
    article = enriched.article
    published = article.published_at or article.fetched_at
    return {
        "article_id": article.article_id,
        "story_id": story_key(enriched),
        "title": article.title,
        "url": article.url,
        "source": article.publisher or article.source_domain,
        "published_at": _iso(published),
        "matched_terms": list(terms),
        "revision": article.revision,
        "joined_at": _iso(now),
    }


def _wire_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k in AlertItem.model_fields}


# --- digests ------------------------------------------------------------------------------------


class DigestFlusher:
    """Sends held alerts whose time has come as one digest per rule (any worker; claims by CAS)."""

    def __init__(
        self,
        store: HistoryStore,
        rules: Callable[[], Mapping[str, Rule]],
        deliverer: Deliverer,
        alerts_topic: str,
        settings: AlertSettings,
        worker_id: str,
    ) -> None:
        self.store = store
        self.rules = rules
        self.deliverer = deliverer
        self.alerts_topic = alerts_topic
        self.settings = settings
        self.worker_id = worker_id
        self._next_check = 0.0
        self._busy = threading.Lock()  # the loop thread and the idle timer both call maybe_flush

    def maybe_flush(self) -> None:
        """Flush at most every ``digest_check_s``; called after each batch and by the worker's timer."""
        if time.monotonic() < self._next_check or not self._busy.acquire(blocking=False):
            return
        try:
            self._next_check = time.monotonic() + self.settings.digest_check_s
            self.flush()
        except Exception:  # a digest problem must not stop alerting; logged, retried at the next check
            log.exception("digest flush failed")
        finally:
            self._busy.release()

    def flush(self, now: datetime | None = None) -> int:
        """Send every due digest; returns how many digests were sent."""
        now = now or datetime.now(UTC)
        by_rule: dict[str, list[Versioned]] = {}
        for doc in self.store.due(now):
            by_rule.setdefault(doc.source["rule_id"], []).append(doc)
        rules = self.rules()
        sent = 0
        for rule_id, docs in by_rule.items():
            rule = rules.get(rule_id)
            claimed = []
            for doc in docs:
                doc.source.update(
                    status="digesting" if rule else "cancelled",
                    lease_owner=self.worker_id,
                    lease_until=_iso(now + timedelta(seconds=self.settings.lease_s)),
                    updated_at=_iso(now),
                )
                if self.store.replace(doc) and rule is not None:
                    claimed.append(doc)
            if rule is None or not claimed:
                continue
            claimed.sort(key=lambda d: d.source["created_at"])
            digest_id = alert_id(rule.id, "digest\n" + "\n".join(d.doc_id for d in claimed))
            event = AlertEvent(
                alert_id=digest_id,
                rule_id=rule.id,
                rule_name=rule.title,
                mode="digest",
                items=tuple(AlertItem.model_validate(_wire_item(d.source["items"][0])) for d in claimed),
                fired_at=now,
            )

            replay = Replay("alert-digest", self.alerts_topic, event)
            ok = self.deliverer.send(rule, render(rule, event), claimed, self.worker_id, replay)
            done = {
                "status": "digested" if ok else "failed",
                "digest_id": digest_id,
                "fired_at": _iso(now),
                "lease_owner": None,
                "updated_at": _iso(datetime.now(UTC)),
            }
            for doc in claimed:
                self.store.update(doc, _setting(done), self.worker_id)
            sent += 1
        return sent
