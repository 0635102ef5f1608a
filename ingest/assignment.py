"""Which feeds this poller replica polls, so several replicas split the registry without overlap.

Each feed is hashed onto one partition of the ``<prefix>feed-assignments`` topic; every replica
joins one consumer group on that topic and polls only the feeds of the partitions the group gave
it. Nothing is ever produced to the topic: Kafka's group protocol is used only to hand out
partitions, so replicas come and go and the group rebalances by itself.

No double polling across a rebalance: the (eager) group protocol withdraws a partition from its
old owner before anyone gets it, and a replica only re-joins between two poll passes, so a feed
being polled is never handed over mid-pass.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from kafka import KafkaConsumer

from ingest.feeds import FeedSpec
from newsflow.kafka_io import ensure_topics, make_consumer
from newsflow.settings import KafkaSettings, LoopSettings

TOPIC_ROLE = "feed-assignments"


def feed_partition(url: str, partitions: int) -> int:
    """A stable partition per feed URL (not Python's salted ``hash``): the same on every replica."""
    return int.from_bytes(hashlib.sha256(url.encode("utf-8")).digest()[:8], "big") % partitions


class FeedAssignment:
    """This replica's share of the feeds, as its Kafka consumer group assigns it."""

    def __init__(self, kafka: KafkaSettings, partitions: int) -> None:
        topic = kafka.topic(TOPIC_ROLE)
        ensure_topics(kafka.model_copy(update={"partitions": partitions}), [TOPIC_ROLE])
        self._consumer: KafkaConsumer = make_consumer(kafka, LoopSettings(), "poller", [topic])
        # The topic's real partition count, not the setting: it may have been created with another.
        self.partitions = len(self._consumer.partitions_for_topic(topic) or ()) or partitions
        self._owned: frozenset[int] = frozenset()

    def refresh(self, timeout_ms: int = 0) -> frozenset[int]:
        """Take part in the group (heartbeats, rebalances) and return the partitions owned now."""
        self._consumer.poll(timeout_ms=timeout_ms)
        self._owned = frozenset(tp.partition for tp in self._consumer.assignment())
        return self._owned

    @property
    def owned(self) -> frozenset[int]:
        return self._owned

    def mine(self, feeds: Iterable[FeedSpec]) -> list[FeedSpec]:
        return [feed for feed in feeds if feed_partition(feed.url, self.partitions) in self._owned]

    def close(self) -> None:
        self._consumer.close()
