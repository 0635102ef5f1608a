"""The example configuration documents every setting, and settings read the environment."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from newsflow import settings as settings_module
from newsflow.services import LocalServicesSettings
from newsflow.settings import ElasticsearchSettings, KafkaSettings

EXAMPLE = Path(__file__).resolve().parents[1] / "deploy" / "newsflow.env.example"


def all_settings_classes() -> list[type[BaseSettings]]:
    classes = [
        obj
        for obj in vars(settings_module).values()
        if isinstance(obj, type) and issubclass(obj, BaseSettings) and obj is not BaseSettings
    ]
    return [*classes, LocalServicesSettings]


def test_every_setting_is_documented_in_the_example():
    documented = set(re.findall(r"^(NEWSFLOW_[A-Z0-9_]+)=", EXAMPLE.read_text(), re.MULTILINE))
    expected = {
        f"{cls.model_config['env_prefix']}{name}".upper()
        for cls in all_settings_classes()
        for name in cls.model_fields
    }
    assert expected - documented == set()


def test_environment_overrides_and_secrets_stay_secret(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NEWSFLOW_KAFKA_BOOTSTRAP_SERVERS", "broker-1:9092,broker-2:9092")
    monkeypatch.setenv("NEWSFLOW_ELASTICSEARCH_PASSWORD", "s3cret")
    assert KafkaSettings().bootstrap_servers == "broker-1:9092,broker-2:9092"
    es = ElasticsearchSettings()
    assert es.password is not None and es.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(es)
