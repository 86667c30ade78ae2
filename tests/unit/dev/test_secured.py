"""The secured cluster's files: what each mode configures, and who may read the secrets."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from pipeline.dev.secured import Secured, check_mode
from pipeline.errors import ConfigError


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mode", ["sasl_ssl", "sasl_plaintext", "ssl"])
def test_each_mode_configures_its_listener_and_keeps_secrets_private(
    tmp_path: Path, mode: str
) -> None:
    secured = Secured(check_mode(mode), tmp_path / "security").create()
    env_files = secured.write_env_files("127.0.0.1:9093")
    properties = secured.server_properties()
    listeners = secured.listener_lines(9093, 9094)
    assert f"EXTERNAL:{secured.protocol}" in listeners and "CONTROLLER:PLAINTEXT" in listeners
    assert (
        "StandardAuthorizer" in properties and "allow.everyone.if.no.acl.found=false" in properties
    )
    for private in [*env_files.values(), tmp_path / "security" / "passwords.json"]:
        assert mode_of(private) == 0o600
    assert mode_of(tmp_path / "security") == 0o700
    app = secured.client_env("app", "127.0.0.1:9093")
    assert app["PIPELINE_SECURITY_PROTOCOL"] == secured.protocol
    assert app["PIPELINE_TOPIC_PREFIX"] == "app."
    if secured.uses_sasl:
        assert len(secured.format_arguments()) == 2  # admin and app exist before the start
        assert "SCRAM-SHA-512" in properties and app["PIPELINE_SASL_USERNAME"] == "app"
        settings = secured.settings("app", "127.0.0.1:9093")
        assert settings.sasl_password is not None
        assert app["PIPELINE_SASL_PASSWORD"] not in repr(settings)
    else:
        assert secured.format_arguments() == []
        assert "ssl.client.auth=required" in properties
        assert Path(app["PIPELINE_SSL_CERTFILE"]).name == "app.crt"
    if secured.uses_tls:
        assert "ssl.keystore.type=PEM" in properties
        assert mode_of(tmp_path / "security" / "broker.pem") == 0o600
    else:
        assert "ssl.keystore" not in properties


def test_an_unknown_mode_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="sasl_ssl, sasl_plaintext, ssl"):
        check_mode("kerberos")
