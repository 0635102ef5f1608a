"""The one consume -> process -> write -> commit loop every consuming stage runs in.

Stages only implement ``process(message) -> result``. This loop owns transport, batching,
retries, dead letters and offsets, with one rule above all: offsets are committed only after the
downstream write (Kafka produce or Elasticsearch bulk) and the dead letters of the batch were
acknowledged. A crash anywhere therefore re-delivers, never loses (at-least-once); the sinks are
idempotent (keys, deterministic ``_id``), so re-delivery is harmless.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Generic, Protocol, TypeVar

from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from pydantic import ValidationError

from newsflow.errors import InvalidMessage, RetryableError, SkipMessage, StageError
from newsflow.metrics import BATCH_SECONDS, MESSAGES, SINK_FAILURES
from newsflow.schemas import DeadLetter, WireModel
from newsflow.settings import LoopSettings

log = logging.getLogger(__name__)

InT = TypeVar("InT", bound=WireModel)
OutT = TypeVar("OutT")
OutT_co = TypeVar("OutT_co", covariant=True)
OutT_contra = TypeVar("OutT_contra", contravariant=True)


class Stage(Protocol[InT, OutT_co]):
    """A pure hook: one input message in, one result out, errors raised as ``newsflow.errors`` types."""

    name: str
    input_model: type[InT]

    def process(self, message: InT) -> OutT_co: ...


class BatchStage(Stage[InT, OutT_co], Protocol):
    """A stage that is faster on a whole batch; returns, per message, its result or its error."""

    def process_batch(self, messages: Sequence[InT]) -> Sequence[OutT_co | BaseException]: ...


class Sink(Protocol[OutT_contra]):
    """Where results go. ``write`` raises ``RetryableError`` if the batch as a whole failed and returns
    per-item failures (index into ``results``): a ``SkipMessage`` is counted (e.g. a stale revision),
    any other error dead-letters that item."""

    def write(self, results: Sequence[OutT_contra]) -> Sequence[tuple[int, StageError]]: ...


@dataclass(frozen=True)
class Record:
    """The transport facts of one consumed message, kept for dead letters and commits."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes


@dataclass
class StageStats:
    """Per-process tally of outcomes, mirrored into Prometheus; read by summaries (demo, run)."""

    stage: str
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, outcome: str, reason: str, n: int = 1) -> None:
        with self._lock:
            self.counts[(outcome, reason)] += n
        MESSAGES.labels(self.stage, outcome, reason).inc(n)

    def total(self, outcome: str | None = None) -> int:
        with self._lock:
            return sum(n for (out, _), n in self.counts.items() if outcome is None or out == outcome)

    def as_dict(self) -> dict[str, dict[str, int]]:
        with self._lock:
            table: dict[str, dict[str, int]] = {}
            for (outcome, reason), n in sorted(self.counts.items()):
                table.setdefault(outcome, {})[reason] = n
            return table


class Activity:
    """When work last happened, shared by the stages of one runner.

    Idle exit (``--idle-exit``, tests, the demo) must wait until *every* stage is idle: a
    downstream stage that is idle only because upstream is still busy must not leave early.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._busy = 0
        self._last = time.monotonic()

    @contextmanager
    def working(self) -> Iterator[None]:
        with self._lock:
            self._busy += 1
        try:
            yield
        finally:
            with self._lock:
                self._busy -= 1
                self._last = time.monotonic()

    def idle_for(self) -> float:
        with self._lock:
            return 0.0 if self._busy else time.monotonic() - self._last


class KafkaSink(Generic[OutT]):
    """Produces results (wire models) to a topic and waits for the broker's acknowledgement."""

    def __init__(self, producer: KafkaProducer, topic: str, timeout_s: float = 60.0) -> None:
        self._producer = producer
        self._topic = topic
        self._timeout_s = timeout_s

    def write(self, results: Sequence[OutT]) -> Sequence[tuple[int, StageError]]:
        futures = []
        for result in results:
            if not isinstance(result, WireModel):
                raise TypeError(f"KafkaSink needs wire models, got {type(result).__name__}")
            value = result.model_dump_json().encode("utf-8")
            futures.append(self._producer.send(self._topic, key=result.key(), value=value))
        try:
            self._producer.flush(timeout=self._timeout_s)
            for future in futures:
                future.get(timeout=self._timeout_s)
        except KafkaError as exc:
            raise RetryableError("kafka_produce_failed", str(exc)) from exc
        return []


class DeadLetterWriter:
    """Sends dead letters and waits for acknowledgement, so a commit never outruns them."""

    def __init__(self, producer: KafkaProducer, topic: str, stage: str) -> None:
        self._producer = producer
        self._topic = topic
        self._stage = stage

    def letter(self, record: Record, error: BaseException, attempts: int) -> DeadLetter:
        reason = error.reason if isinstance(error, StageError) else f"unhandled_{type(error).__name__}"
        try:
            value, encoding = record.value.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            value, encoding = base64.b64encode(record.value).decode("ascii"), "base64"
        return DeadLetter(
            stage=self._stage,
            source_topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            original_key=record.key,
            original_value=value,
            encoding=encoding,  # type: ignore[arg-type]  # narrowed by the two branches above
            error_type=type(error).__name__,
            reason=reason,
            detail=str(error)[:2000],
            attempts=attempts,
            failed_at=datetime.now(UTC),
        )

    def write(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        futures = [
            self._producer.send(self._topic, key=letter.key(), value=letter.model_dump_json().encode("utf-8"))
            for letter in letters
        ]
        try:
            self._producer.flush(timeout=60)
            for future in futures:
                future.get(timeout=60)
        except KafkaError as exc:
            raise RetryableError("dead_letter_produce_failed", str(exc)) from exc


def decode(model: type[InT], value: bytes) -> InT:
    """Validate bytes against the wire schema; anything else is a poison message."""
    try:
        return model.model_validate_json(value)
    except ValidationError as exc:
        raise InvalidMessage("invalid_message", str(exc)[:500]) from exc
    except UnicodeDecodeError as exc:
        raise InvalidMessage("invalid_utf8", str(exc)) from exc


class StreamLoop(Generic[InT, OutT]):
    """Runs one stage over a consumer until stopped. See the module docstring for the guarantees."""

    def __init__(
        self,
        stage: Stage[InT, OutT],
        consumer: KafkaConsumer,
        sink: Sink[OutT],
        dead_letters: DeadLetterWriter,
        settings: LoopSettings,
        stats: StageStats | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.stage = stage
        self.consumer = consumer
        self.sink = sink
        self.dead_letters = dead_letters
        self.settings = settings
        self.stats = stats or StageStats(stage.name)
        self._sleep = sleep

    def run(
        self, stop: threading.Event, idle_exit_s: float | None = None, activity: Activity | None = None
    ) -> None:
        """Loop until ``stop`` is set, or until ``activity`` (this loop's own by default) was idle
        for ``idle_exit_s`` seconds."""
        activity = activity or Activity()
        while not stop.is_set():
            records = self._poll_batch(stop)
            if records:
                with activity.working():
                    self.run_batch(records)
            elif idle_exit_s is not None and activity.idle_for() >= idle_exit_s:
                return

    def _poll_batch(self, stop: threading.Event) -> list[Record]:
        """Collect up to ``batch_size`` records, waiting at most ``linger_s`` once the first arrived."""
        records: list[Record] = []
        deadline: float | None = None
        while len(records) < self.settings.batch_size and not stop.is_set():
            timeout_ms = 500 if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            polled = self.consumer.poll(
                timeout_ms=timeout_ms, max_records=self.settings.batch_size - len(records)
            )
            for batch in polled.values():
                for msg in batch:
                    key = msg.key.decode("utf-8", "replace") if isinstance(msg.key, bytes) else msg.key
                    records.append(Record(msg.topic, msg.partition, msg.offset, key, msg.value or b""))
            if not records:
                return records
            if deadline is None:
                deadline = time.monotonic() + self.settings.linger_s
            if time.monotonic() >= deadline:
                break
        return records

    def run_batch(self, records: Sequence[Record]) -> None:
        started = time.monotonic()
        outcomes: Counter[tuple[str, str]] = Counter()
        results: list[OutT] = []
        result_records: list[Record] = []
        letters: list[DeadLetter] = []
        decoded: list[tuple[Record, InT]] = []
        handled: list[tuple[Record, OutT | BaseException, int]] = []
        for record in records:
            try:
                decoded.append((record, decode(self.stage.input_model, record.value)))
            except InvalidMessage as exc:
                handled.append((record, exc, 1))
        outputs = self._process_all([message for _, message in decoded])
        handled.extend(
            (record, output, attempts)
            for (record, _), (output, attempts) in zip(decoded, outputs, strict=True)
        )
        for record, output, attempts in handled:
            if isinstance(output, BaseException):
                self._fail(record, output, attempts, outcomes, letters)
            else:
                if attempts > 1:
                    outcomes[("retried", "recovered")] += 1
                results.append(output)
                result_records.append(record)
        try:
            failures = self._write_with_retry(results)
            for index, error in failures:
                self._fail(result_records[index], error, 1, outcomes, letters)
            ok = len(results) - len(failures)
            if ok:
                outcomes[("ok", "written")] += ok
            self.dead_letters.write(letters)
        except RetryableError as exc:
            SINK_FAILURES.labels(self.stage.name, exc.reason).inc()
            log.exception(
                "batch not written; will be re-delivered", extra={"stage": self.stage.name, "error": str(exc)}
            )
            self._rewind(records)
            self._sleep(self.settings.backoff_max_s)
            return
        if self._commit(records):
            for (outcome, reason), n in outcomes.items():
                self.stats.add(outcome, reason, n)
        BATCH_SECONDS.labels(self.stage.name).observe(time.monotonic() - started)

    def _fail(
        self,
        record: Record,
        error: BaseException,
        attempts: int,
        outcomes: Counter[tuple[str, str]],
        letters: list[DeadLetter],
    ) -> None:
        """Count a skip, or turn the failure into a dead letter of this batch."""
        if isinstance(error, SkipMessage):
            outcomes[("skipped", error.reason)] += 1
            return
        letter = self.dead_letters.letter(record, error, attempts)
        log.warning(
            "dead-lettered",
            extra={"stage": self.stage.name, "reason": letter.reason, "offset": record.offset},
        )
        letters.append(letter)
        outcomes[("dead_lettered", letter.reason)] += 1

    def _process_all(self, messages: Sequence[InT]) -> list[tuple[OutT | BaseException, int]]:
        """Each message's result or error, with the attempts it took.

        A stage with ``process_batch`` (e.g. spaCy's ``nlp.pipe``) gets the whole batch at once;
        items it reports as retryable are retried one by one.
        """
        first: Sequence[OutT | BaseException] | None = None
        process_batch = getattr(self.stage, "process_batch", None)
        if process_batch is not None and messages:
            try:
                first = process_batch(messages)
            except Exception:  # fall back to one-by-one, where failures are attributable
                log.exception("process_batch failed; processing one by one", extra={"stage": self.stage.name})
        outputs: list[tuple[OutT | BaseException, int]] = []
        for index, message in enumerate(messages):
            if first is not None and (
                not isinstance(first[index], RetryableError) or self.settings.max_attempts <= 1
            ):
                outputs.append((first[index], 1))
                continue
            try:
                outputs.append(self._process_with_retry(message, already_tried=int(first is not None)))
            except RetryableError as exc:
                outputs.append((exc, self.settings.max_attempts))
            except Exception as exc:  # noqa: BLE001 - any failure of one message must not stop the stream
                outputs.append((exc, 1))
        return outputs

    def _process_with_retry(self, message: InT, already_tried: int = 0) -> tuple[OutT, int]:
        delay = self.settings.backoff_initial_s
        attempt = already_tried
        while True:
            if attempt:
                self._sleep(delay)
                delay = min(delay * 2, self.settings.backoff_max_s)
            attempt += 1
            try:
                return self.stage.process(message), attempt
            except RetryableError:
                if attempt >= self.settings.max_attempts:
                    raise

    def _write_with_retry(self, results: Sequence[OutT]) -> Sequence[tuple[int, StageError]]:
        if not results:
            return []
        delay = self.settings.backoff_initial_s
        for attempt in range(1, self.settings.max_attempts + 1):
            try:
                return self.sink.write(results)
            except RetryableError as exc:
                SINK_FAILURES.labels(self.stage.name, exc.reason).inc()
                if attempt == self.settings.max_attempts:
                    raise
                log.warning(
                    "sink write failed, retrying", extra={"stage": self.stage.name, "error": str(exc)}
                )
                self._sleep(delay)
                delay = min(delay * 2, self.settings.backoff_max_s)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _rewind(self, records: Sequence[Record]) -> None:
        """Seek back to the batch's first offsets so the same records are polled again."""
        first: dict[TopicPartition, int] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            first[tp] = min(first.get(tp, record.offset), record.offset)
        for tp, offset in first.items():
            self.consumer.seek(tp, offset)

    def _commit(self, records: Sequence[Record]) -> bool:
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            current = offsets.get(tp)
            if current is None or record.offset + 1 > current.offset:
                offsets[tp] = OffsetAndMetadata(record.offset + 1, "", -1)
        try:
            self.consumer.commit(offsets)
        except CommitFailedError as exc:
            # The group rebalanced; the new owner re-processes this batch (idempotent sinks).
            log.warning("commit failed after rebalance", extra={"stage": self.stage.name, "error": str(exc)})
            return False
        return True


__all__ = [
    "Activity",
    "BatchStage",
    "DeadLetterWriter",
    "KafkaSink",
    "Record",
    "Sink",
    "Stage",
    "StageStats",
    "StreamLoop",
    "decode",
]
