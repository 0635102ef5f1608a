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
        if isinstance(obj, type)
        and issubclass(obj, BaseSettings)
        and obj not in (BaseSettings, settings_module.NewsflowSettings)
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


def test_the_example_file_loads_as_is_and_empty_means_unset():
    from newsflow.settings import IngestSettings, ObservabilitySettings, SpacySettings

    for cls in all_settings_classes():
        cls(_env_file=EXAMPLE)
    # _env_file is an init-only argument of pydantic-settings that mypy's plugin does not see.
    assert IngestSettings(_env_file=EXAMPLE).raw_html_dir is None  # type: ignore[call-arg]
    assert KafkaSettings(_env_file=EXAMPLE).sasl_mechanism is None  # type: ignore[call-arg]
    assert ObservabilitySettings(_env_file=EXAMPLE).metrics_port is None  # type: ignore[call-arg]
    assert SpacySettings(_env_file=EXAMPLE).voters is None  # type: ignore[call-arg]


def test_an_empty_variable_keeps_its_meaning_where_the_default_is_a_value(monkeypatch: pytest.MonkeyPatch):
    from newsflow.settings import SpacySettings

    monkeypatch.setenv("NEWSFLOW_SPACY_MODEL_DE", "")
    assert SpacySettings().model_de == ""  # German NER switched off, as documented
    monkeypatch.setenv("NEWSFLOW_KAFKA_SSL_CAFILE", "")
    assert KafkaSettings().ssl_cafile is None  # not Path("") (the working directory)
