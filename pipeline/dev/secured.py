"""The local cluster with authentication, encryption and ACLs: `pipeline infra up --security`.

Modes: `sasl_ssl` (SCRAM-SHA-512 over TLS), `sasl_plaintext` (SCRAM without
TLS) and `ssl` (mutual TLS: the client certificate's common name is the
principal). Two principals: `admin`, a super user (the brokers talk to each
other as it), and `app`, which the StandardAuthorizer allows only resources
named with the application prefix (`app.` by default): its topics and their
DLQs, its consumer groups (and its replay and redrive groups), its
transactional ids. The controller listener stays plaintext on loopback; its
anonymous principal is a super user there only, as the brokers' controller
connections need.

Secrets never go to the terminal or a log: the passwords are generated,
kept in files readable by their owner only (`security/admin.env`,
`security/app.env`, each the PIPELINE_* settings of one principal), and
`infra up` prints the file names.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from pydantic import SecretStr

from pipeline.dev.pki import LocalCA
from pipeline.errors import ConfigError
from pipeline.settings import PipelineSettings

SecurityMode = Literal["plaintext", "sasl_ssl", "sasl_plaintext", "ssl"]
SECURED_MODES = ("sasl_ssl", "sasl_plaintext", "ssl")
MECHANISM = "SCRAM-SHA-512"
ADMIN, APP = "admin", "app"
APP_PREFIX = "app."
PROTOCOLS = {"sasl_ssl": "SASL_SSL", "sasl_plaintext": "SASL_PLAINTEXT", "ssl": "SSL"}


def check_mode(mode: str) -> SecurityMode:
    if mode not in ("plaintext", *SECURED_MODES):
        raise ConfigError(
            f"--security {mode!r} is not one of plaintext, sasl_ssl, sasl_plaintext, ssl"
        )
    return mode  # type: ignore[return-value]


@dataclass(frozen=True)
class Secured:
    """One secured cluster's folder: CA, certificates, passwords, client settings."""

    mode: SecurityMode
    folder: Path
    prefix: str = APP_PREFIX

    @property
    def protocol(self) -> str:
        return PROTOCOLS[self.mode]

    @property
    def uses_sasl(self) -> bool:
        return self.mode.startswith("sasl")

    @property
    def uses_tls(self) -> bool:
        return self.mode in ("sasl_ssl", "ssl")

    def create(self) -> Secured:
        """New CA, certificates and passwords (a fresh cluster: its storage is formatted anew)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        ca = LocalCA(self.folder).create()
        ca.issue("broker", server=True)
        if self.mode == "ssl":
            ca.issue(ADMIN, server=False)
            ca.issue(APP, server=False)
        passwords = {ADMIN: secrets.token_urlsafe(18), APP: secrets.token_urlsafe(18)}
        _private_text(self.folder / "passwords.json", json.dumps(passwords))
        return self

    def _password(self, user: str) -> str:
        return str(json.loads((self.folder / "passwords.json").read_text())[user])

    def listener_lines(self, broker_port: int, controller_port: int) -> str:
        return "\n".join(
            [
                f"listeners=EXTERNAL://127.0.0.1:{broker_port},"
                f"CONTROLLER://127.0.0.1:{controller_port}",
                f"advertised.listeners=EXTERNAL://127.0.0.1:{broker_port}",
                "inter.broker.listener.name=EXTERNAL",
                f"listener.security.protocol.map=EXTERNAL:{self.protocol},CONTROLLER:PLAINTEXT",
            ]
        )

    def server_properties(self) -> str:
        lines = [
            "# Authentication, encryption and authorisation (pipeline/dev/secured.py).",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found=false",
        ]
        if self.uses_sasl:
            jaas = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="{ADMIN}" password="{self._password(ADMIN)}";'
            )
            lines += [
                f"sasl.enabled.mechanisms={MECHANISM}",
                f"sasl.mechanism.inter.broker.protocol={MECHANISM}",
                f"listener.name.external.{MECHANISM.lower()}.sasl.jaas.config={jaas}",
                f"super.users=User:{ADMIN};User:ANONYMOUS",
            ]
        else:
            lines += [
                "ssl.client.auth=required",
                # The certificate's CN is the principal: User:admin, User:app, User:broker.
                "ssl.principal.mapping.rules=RULE:^.*CN=([a-zA-Z0-9._-]+).*$/$1/,DEFAULT",
                f"super.users=User:{ADMIN};User:broker;User:ANONYMOUS",
            ]
        if self.uses_tls:
            lines += [
                "ssl.keystore.type=PEM",
                f"ssl.keystore.location={self.folder / 'broker.pem'}",
                "ssl.truststore.type=PEM",
                f"ssl.truststore.location={self.folder / 'ca.crt'}",
            ]
        return "\n".join(lines) + "\n"

    def format_arguments(self) -> list[str]:
        """kafka-storage format: the SCRAM users exist before the first broker starts."""
        if not self.uses_sasl:
            return []
        return [
            f"--add-scram={MECHANISM}=[name={user},password={self._password(user)}]"
            for user in (ADMIN, APP)
        ]

    def client_env(self, user: str, bootstrap: str) -> dict[str, str]:
        """The PIPELINE_* settings a client of `user` needs (the app's include its prefix)."""
        env = {
            "PIPELINE_BOOTSTRAP_SERVERS": bootstrap,
            "PIPELINE_SECURITY_PROTOCOL": self.protocol,
        }
        if self.uses_sasl:
            env |= {
                "PIPELINE_SASL_MECHANISM": MECHANISM,
                "PIPELINE_SASL_USERNAME": user,
                "PIPELINE_SASL_PASSWORD": self._password(user),
            }
        if self.uses_tls:
            env["PIPELINE_SSL_CAFILE"] = str(self.folder / "ca.crt")
        if self.mode == "ssl":
            env["PIPELINE_SSL_CERTFILE"] = str(self.folder / f"{user}.crt")
            env["PIPELINE_SSL_KEYFILE"] = str(self.folder / f"{user}.key")
        if user == APP:
            env["PIPELINE_TOPIC_PREFIX"] = self.prefix
        return env

    def settings(self, user: str, bootstrap: str) -> PipelineSettings:
        """`user`'s client settings, as the env file gives them."""
        env = self.client_env(user, bootstrap)
        return PipelineSettings(
            bootstrap_servers=bootstrap,
            security_protocol=self.protocol,
            sasl_mechanism=MECHANISM if self.uses_sasl else None,
            sasl_username=user if self.uses_sasl else None,
            sasl_password=SecretStr(env["PIPELINE_SASL_PASSWORD"]) if self.uses_sasl else None,
            ssl_cafile=Path(env["PIPELINE_SSL_CAFILE"]) if self.uses_tls else None,
            ssl_certfile=Path(env["PIPELINE_SSL_CERTFILE"]) if self.mode == "ssl" else None,
            ssl_keyfile=Path(env["PIPELINE_SSL_KEYFILE"]) if self.mode == "ssl" else None,
            topic_prefix=env.get("PIPELINE_TOPIC_PREFIX", ""),
        )

    def grant_application(
        self, admin: PipelineSettings, progress: Callable[[str], None] | None = None
    ) -> None:
        from pipeline.kafka.confluent.acls import application_bindings, grant

        if progress:
            progress(f"granting User:{APP} the resources named {self.prefix}*")
        grant(admin, application_bindings(f"User:{APP}", self.prefix))

    def write_env_files(self, bootstrap: str) -> dict[str, Path]:
        written = {}
        for user in (ADMIN, APP):
            path = self.folder / f"{user}.env"
            body = "".join(f"{k}={v}\n" for k, v in self.client_env(user, bootstrap).items())
            _private_text(path, body)
            written[user] = path
        return written


def _private_text(path: Path, text: str) -> None:
    path.touch(mode=0o600, exist_ok=True)
    os.chmod(path, 0o600)
    path.write_text(text)


class ListenerPorts(Protocol):
    broker_port: int
    controller_port: int
    proxied_port: int
    proxy_port: int


def plaintext_listener_lines(node: ListenerPorts) -> str:
    """The plaintext cluster's listeners. PROXIED advertises a port where `pipeline chaos`
    may run a TCP proxy to this listener: a client bootstrapped there stays behind it."""
    return "\n".join(
        [
            f"listeners=PLAINTEXT://127.0.0.1:{node.broker_port},"
            f"PROXIED://127.0.0.1:{node.proxied_port},"
            f"CONTROLLER://127.0.0.1:{node.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{node.broker_port},"
            f"PROXIED://127.0.0.1:{node.proxy_port}",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,PROXIED:PLAINTEXT,"
            "CONTROLLER:PLAINTEXT",
        ]
    )
