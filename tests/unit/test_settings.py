from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.kafka.aiokafka.config import client_kwargs
from pipeline.settings import load_settings


def test_environment_configures_bootstrap_and_nested_tuning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PIPELINE_BOOTSTRAP_SERVERS", "broker-a:9092,broker-b:9092")
    monkeypatch.setenv("PIPELINE_PRODUCER__LINGER_MS", "17")
    settings = load_settings()
    assert settings.bootstrap_servers == "broker-a:9092,broker-b:9092"
    assert settings.producer.linger_ms == 17


def test_password_never_shows_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINE_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("PIPELINE_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("PIPELINE_SASL_USERNAME", "svc")
    monkeypatch.setenv("PIPELINE_SASL_PASSWORD", "hunter2")
    settings = load_settings()
    assert "hunter2" not in repr(settings)
    assert client_kwargs(settings)["sasl_plain_password"] == "hunter2"


def test_sasl_without_credentials_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINE_SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(ConfigError, match="needs sasl_mechanism, sasl_username and sasl_password"):
        load_settings()


def test_config_file_is_read_and_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "pipeline.toml"
    config.write_text(
        'client_id = "from-file"\nbootstrap_servers = "file:9092"\n[producer]\nlinger_ms = 9\n'
    )
    monkeypatch.setenv("PIPELINE_CONFIG_FILE", str(config))
    monkeypatch.setenv("PIPELINE_BOOTSTRAP_SERVERS", "env:9092")
    settings = load_settings()
    assert settings.client_id == "from-file"
    assert settings.bootstrap_servers == "env:9092"
    assert settings.producer.linger_ms == 9


def test_missing_config_file_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINE_CONFIG_FILE", "/nonexistent/pipeline.toml")
    with pytest.raises(ConfigError, match=r"/nonexistent/pipeline\.toml"):
        load_settings()


def test_bad_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINE_PRODUCER__LINGER_MS", "-1")
    with pytest.raises(ConfigError, match=r"producer\.linger_ms"):
        load_settings()
