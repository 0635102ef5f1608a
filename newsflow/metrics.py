"""Prometheus metrics shared by all stages; every message ends in exactly one ``outcome``."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

MESSAGES = Counter(
    "newsflow_messages_total",
    "Messages handled by a stage, by outcome (ok, skipped, dead_lettered, retried) and reason.",
    ["stage", "outcome", "reason"],
)
BATCH_SECONDS = Histogram(
    "newsflow_batch_seconds",
    "Wall time of one consume -> process -> write -> commit batch.",
    ["stage"],
)
SINK_FAILURES = Counter(
    "newsflow_sink_failures_total",
    "Whole-batch write failures (e.g. Elasticsearch or Kafka unavailable); the batch is retried.",
    ["stage", "reason"],
)
ENRICHMENT_GAPS = Counter(
    "newsflow_enrichment_gaps_total",
    "Articles passed on with part of their enrichment skipped (e.g. no NER model for the language).",
    ["stage", "reason"],
)
