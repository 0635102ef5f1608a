"""Kafka clients built from settings; the only place that knows kafka-python's options."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from kafka.serializer import Serializer

from newsflow.settings import KafkaSettings, LoopSettings


class KeySerializer(Serializer):  # type: ignore[misc]  # kafka-python ships no type information
    """Message keys are article ids (text); the broker hashes their UTF-8 bytes to pick a partition."""

    def serialize(self, topic: str, headers: list[tuple[str, bytes]], data: str) -> bytes:
        return data.encode("utf-8")


def bootstrap_servers(settings: KafkaSettings) -> str:
    """The configured cluster, or the project's local broker when none is configured."""
    if settings.bootstrap_servers:
        return settings.bootstrap_servers
    from newsflow.services import LocalServicesSettings, kafka_bootstrap

    return kafka_bootstrap(LocalServicesSettings())


def client_config(settings: KafkaSettings) -> dict[str, Any]:
    """Connection and security options every kafka-python client of this project shares."""
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers(settings).split(","),
        "security_protocol": settings.security_protocol,
    }
    if settings.sasl_mechanism:
        config["sasl_mechanism"] = settings.sasl_mechanism
        config["sasl_plain_username"] = settings.sasl_username
        config["sasl_plain_password"] = (
            settings.sasl_password.get_secret_value() if settings.sasl_password else None
        )
    if settings.ssl_cafile:
        config["ssl_cafile"] = str(settings.ssl_cafile)
    return config


def make_producer(settings: KafkaSettings) -> KafkaProducer:
    """Durable producer: acks from all replicas, idempotent retries, compressed batches."""
    return KafkaProducer(
        **client_config(settings),
        acks="all",
        enable_idempotence=True,
        compression_type="gzip",
        linger_ms=20,
        max_request_size=8 * 1024 * 1024,
        key_serializer=KeySerializer(),
    )


def make_consumer(
    settings: KafkaSettings, loop: LoopSettings, group: str, topics: Iterable[str]
) -> KafkaConsumer:
    """Manual-commit consumer: offsets are committed by the loop only after the downstream write."""
    consumer = KafkaConsumer(
        **client_config(settings),
        group_id=f"{settings.group_prefix}-{group}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=loop.batch_size,
        max_poll_interval_ms=loop.max_poll_interval_ms,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    consumer.subscribe(list(topics))
    return consumer


def ensure_topics(settings: KafkaSettings, roles: Iterable[str]) -> list[str]:
    """Create the pipeline's topics if missing (idempotent); returns the ones created now."""
    admin = KafkaAdminClient(**client_config(settings))
    try:
        existing = set(admin.list_topics())
        wanted = [settings.topic(role) for role in roles]
        missing = [name for name in wanted if name not in existing]
        created: list[str] = []
        for name in missing:
            try:
                admin.create_topics(
                    [
                        NewTopic(
                            name,
                            num_partitions=settings.partitions,
                            replication_factor=settings.replication_factor,
                        )
                    ]
                )
                created.append(name)
            except TopicAlreadyExistsError:
                pass
        return created
    finally:
        admin.close()
