"""Delivery channels: generic JSON webhook, Slack-compatible webhook, SMTP e-mail, Kafka topic.

A channel sends one rendered alert and raises ``DeliveryError`` saying whether a retry can help.
Every message carries the alert id (``Idempotency-Key`` header, e-mail ``Message-ID``, Kafka key),
so a receiver can drop the one re-send a crash between "sent" and "recorded" can cause.
"""

from __future__ import annotations

import smtplib
import string
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Protocol

import httpx
from kafka import KafkaProducer
from kafka.errors import KafkaError

from alerts.rules import Channel, Rule
from newsflow.schemas import AlertEvent
from newsflow.settings import AlertSettings, KafkaSettings


class DeliveryError(Exception):
    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


@dataclass(frozen=True)
class Rendered:
    """An alert or digest, rendered once for all of a rule's channels."""

    event: AlertEvent
    subject: str
    text: str

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = self.event.model_dump(mode="json")
        data.update(subject=self.subject, text=self.text)
        return data


def render(rule: Rule, event: AlertEvent) -> Rendered:
    """Fill the rule's templates: single alerts from their first article, digests one block per item."""
    formatter = string.Formatter()
    blocks = []
    for item in event.items:
        fields = _Blank(
            rule=rule.title,
            title=item.title,
            source=item.source,
            time=item.published_at.isoformat(timespec="minutes") if item.published_at else "",
            terms=", ".join(item.matched_terms),
            link=item.url,
            count=str(len(event.items)),
        )
        blocks.append(formatter.vformat(rule.template.text, (), fields))
    first = event.items[0]
    head = _Blank(rule=rule.title, title=first.title, source=first.source, count=str(len(event.items)))
    if event.mode == "digest":
        subject = f"[newsflow] {rule.title}: digest of {len(event.items)} stories"
    else:
        subject = formatter.vformat(rule.template.subject, (), head)
    return Rendered(event, subject, "\n\n".join(blocks))


class Sender(Protocol):
    def send(self, rendered: Rendered) -> None: ...


class WebhookSender:
    """POSTs JSON; ``slack`` sends Slack's ``{"text": ...}`` shape (also what Mattermost and Teams take)."""

    def __init__(self, http: httpx.Client, url: str, slack: bool = False) -> None:
        self.http = http
        self.url = url
        self.slack = slack

    def send(self, rendered: Rendered) -> None:
        body = {"text": f"*{rendered.subject}*\n{rendered.text}"} if self.slack else rendered.payload()
        try:
            response = self.http.post(
                self.url, json=body, headers={"Idempotency-Key": rendered.event.alert_id}
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}", retryable=True) from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise DeliveryError(f"HTTP {response.status_code}", retryable=True)
        if response.status_code >= 300:
            raise DeliveryError(f"HTTP {response.status_code}", retryable=False)


class EmailSender:
    def __init__(self, settings: AlertSettings, to: tuple[str, ...]) -> None:
        self.settings = settings
        self.to = to

    def send(self, rendered: Rendered) -> None:
        message = EmailMessage()
        message["Subject"] = rendered.subject
        message["From"] = self.settings.mail_from
        message["To"] = ", ".join(self.to)
        message["Message-ID"] = f"<{rendered.event.alert_id}@newsflow.alerts>"
        message.set_content(rendered.text)
        s = self.settings
        try:
            with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.timeout_s) as smtp:
                if s.smtp_starttls:
                    smtp.starttls()
                if s.smtp_username and s.smtp_password:
                    smtp.login(s.smtp_username, s.smtp_password.get_secret_value())
                smtp.send_message(message)
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", exc.smtp_code < 500) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}", retryable=True) from exc


class KafkaSender:
    def __init__(self, producer: KafkaProducer, topic: str, timeout_s: float) -> None:
        self.producer = producer
        self.topic = topic
        self.timeout_s = timeout_s

    def send(self, rendered: Rendered) -> None:
        event = rendered.event
        try:
            future = self.producer.send(self.topic, key=event.key(), value=event.model_dump_json().encode())
            future.get(timeout=self.timeout_s)
        except KafkaError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}", retryable=True) from exc


class Senders:
    """Builds the sender of a rule's channel, sharing one HTTP pool and one producer."""

    def __init__(
        self, settings: AlertSettings, kafka: KafkaSettings, producer: KafkaProducer, http: httpx.Client
    ) -> None:
        self.settings = settings
        self.kafka = kafka
        self.producer = producer
        self.http = http

    def for_channel(self, channel: Channel) -> Sender:
        if channel.type in {"webhook", "slack"}:
            return WebhookSender(self.http, channel.url or "", slack=channel.type == "slack")
        if channel.type == "email":
            return EmailSender(self.settings, channel.to)
        return KafkaSender(
            self.producer, channel.topic or self.kafka.topic(AlertEvent.topic_role), self.settings.timeout_s
        )
