"""Alert rules: what to match, where to deliver, how often. Stored as YAML (``NEWSFLOW_ALERT_RULES``)."""

from __future__ import annotations

import re
import string
from datetime import time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from alerts.query import QuerySyntaxError, parse

_DURATION = re.compile(r"^(\d+)\s*([smhd])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
TEMPLATE_FIELDS = frozenset({"rule", "title", "source", "time", "terms", "link", "count"})


def parse_duration(text: str | float) -> float:
    """``90s``, ``10m``, ``1h``, ``1d`` (or plain seconds) to seconds."""
    if isinstance(text, int | float):
        return float(text)
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"a duration is a number and one of s/m/h/d, e.g. 10m, not {text!r}")
    return float(int(match.group(1)) * _SECONDS[match.group(2)])


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Channel(_Frozen):
    """Where an alert goes. In YAML also a plain string: a URL (webhook), ``slack:URL``,
    ``mailto:ADDR``, ``kafka`` or ``kafka:TOPIC``."""

    type: Literal["webhook", "slack", "email", "kafka"]
    url: str | None = None
    to: tuple[str, ...] = ()
    topic: str | None = Field(default=None, description="Kafka channel: topic (default newsflow.alerts).")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        if not isinstance(data, str):
            return data
        if data.startswith(("http://", "https://")):
            return {"type": "webhook", "url": data}
        if data.startswith("slack:"):
            return {"type": "slack", "url": data.removeprefix("slack:")}
        if data.startswith("mailto:"):
            return {"type": "email", "to": tuple(data.removeprefix("mailto:").split(","))}
        if data == "kafka" or data.startswith("kafka:"):
            return {"type": "kafka", "topic": data.partition(":")[2] or None}
        raise ValueError(f"unknown channel {data!r}: a URL, slack:URL, mailto:ADDR, kafka or kafka:TOPIC")

    @model_validator(mode="after")
    def _complete(self) -> Channel:
        if self.type in {"webhook", "slack"} and not self.url:
            raise ValueError(f"a {self.type} channel needs a url")
        if self.type == "email" and not self.to:
            raise ValueError("an email channel needs recipients (to)")
        return self

    @property
    def label(self) -> str:
        """Stable name of this channel within a rule (delivery state is kept per label)."""
        target = self.url or ",".join(self.to) or self.topic or "default"
        return f"{self.type}:{target}"

    def as_yaml(self) -> str | dict[str, Any]:
        return self.model_dump(exclude_defaults=True)


class Throttle(_Frozen):
    """At most ``max_alerts`` per fixed window; the rest wait for the window's end, as one digest."""

    max_alerts: int = Field(default=1, ge=1)
    window: float = Field(description="Seconds; YAML also takes 10m, 1h, 1d.")

    _parse_window = field_validator("window", mode="before")(parse_duration)


class QuietHours(_Frozen):
    """Alerts inside this daily span are held and sent as one digest when it ends."""

    start: time
    end: time


class Template(_Frozen):
    """``str.format`` templates over {rule} {title} {source} {time} {terms} {link} {count}."""

    subject: str = "[newsflow] {rule}: {title}"
    text: str = "{title}\n{source} · {time}\nmatched: {terms}\n{link}"

    @field_validator("subject", "text")
    @classmethod
    def _known_fields(cls, value: str) -> str:
        names = {name for _, name, _, _ in string.Formatter().parse(value) if name}
        unknown = names - TEMPLATE_FIELDS
        if unknown:
            raise ValueError(f"unknown template fields {sorted(unknown)}; known: {sorted(TEMPLATE_FIELDS)}")
        return value


class Rule(_Frozen):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    name: str = ""
    enabled: bool = True
    topics_any: tuple[str, ...] = ()
    topics_all: tuple[str, ...] = ()
    entities: tuple[str, ...] = Field(
        default=(), description="Any of these canonical names or surface forms."
    )
    query: str | None = None
    languages: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    min_topic_score: float = Field(default=0.0, ge=0.0, le=1.0)
    channels: tuple[Channel, ...] = Field(min_length=1)
    throttle: Throttle | None = None
    digest: Literal["none", "hourly", "daily"] = "none"
    digest_at: time = time(8, 0)
    quiet_hours: QuietHours | None = None
    timezone: str | None = None
    template: Template = Template()

    @model_validator(mode="after")
    def _check(self) -> Rule:
        if not (self.topics_any or self.topics_all or self.entities or self.query):
            raise ValueError(
                f"rule {self.id}: needs topics, entities or a query (else it matches everything)"
            )
        if self.query is not None:
            try:
                parse(self.query)
            except QuerySyntaxError as exc:
                raise ValueError(f"rule {self.id}: query: {exc}") from exc
        if self.timezone:
            try:
                ZoneInfo(self.timezone)
            except ZoneInfoNotFoundError as exc:
                raise ValueError(f"rule {self.id}: unknown time zone {self.timezone!r}") from exc
        return self

    @property
    def title(self) -> str:
        return self.name or self.id

    def as_yaml(self) -> dict[str, Any]:
        data = self.model_dump(mode="json", exclude_defaults=True)
        data["id"] = self.id
        return data


class RuleSet(_Frozen):
    rules: tuple[Rule, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> RuleSet:
        ids = [rule.id for rule in self.rules]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate rule ids: {duplicates}")
        return self

    @classmethod
    def load(cls, path: Path) -> RuleSet:
        if not path.exists():
            return cls()
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if isinstance(data, list):
            data = {"rules": data}
        return cls.model_validate(data)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(
            {"rules": [rule.as_yaml() for rule in self.rules]}, sort_keys=False, allow_unicode=True
        )
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)

    def get(self, rule_id: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.id == rule_id), None)

    def with_rule(self, rule: Rule) -> RuleSet:
        return RuleSet(rules=(*[r for r in self.rules if r.id != rule.id], rule))

    def without(self, rule_id: str) -> RuleSet:
        return RuleSet(rules=tuple(r for r in self.rules if r.id != rule_id))
