"""Structured logging, configured only by entry points (the CLI), never on import.

Library code logs with ``logging.getLogger(__name__)`` and ``extra={...}``; this renders those
records, with their extra fields, as JSON lines (production) or readable console lines.
"""

from __future__ import annotations

import logging
import sys

import structlog

_STANDARD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def _extra_fields(
    _logger: object, _name: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    record = event_dict.get("_record")
    if isinstance(record, logging.LogRecord):
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                event_dict.setdefault(key, value)
    return event_dict


def configure(level: str = "INFO", fmt: str = "console") -> None:
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    pre_chain: list[structlog.typing.Processor] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _extra_fields,
    ]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
            foreign_pre_chain=pre_chain,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("kafka", "elastic_transport", "httpx", "httpcore", "trafilatura", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    # Expected, not actionable here: a group's first assignment before topic metadata arrived, and
    # kafka-python's I/O thread noting it waited for the GIL while a stage thread ran spaCy.
    for expected in ("kafka.coordinator.assignors.range", "kafka.net.selector"):
        logging.getLogger(expected).setLevel(logging.ERROR)
