"""Exception types that decide the fate of a message in the stream loop.

A stage raises one of these; the loop, never the stage, turns it into a counted skip, a retry
with backoff, or a dead letter. Any other exception is treated as a bug and dead-lettered too,
so one bad message can never stall a partition.
"""

from __future__ import annotations


class StageError(Exception):
    """Base: ``reason`` is a short stable slug used as the metrics label and in dead letters."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class SkipMessage(StageError):
    """Expected, final: nothing to do for this message (e.g. a 404). Counted, then committed."""


class RetryableError(StageError):
    """Transient (timeout, 5xx, 429): retried with backoff, dead-lettered when attempts run out."""


class PermanentError(StageError):
    """The message cannot be processed as it is (poison data): dead-lettered at once."""


class InvalidMessage(PermanentError):
    """The bytes on the wire are not a valid message of the expected schema."""
