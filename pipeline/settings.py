"""One settings class for every process: CLI, producers, workers, gateway.

Sources, strongest first: keyword arguments, environment (`PIPELINE_*`), a
TOML file named by `PIPELINE_CONFIG_FILE` (or `pipeline.toml` in the working
directory), then defaults. Secrets are `SecretStr`, so printing the settings
or logging them never shows a password.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    PyprojectTomlConfigSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from pipeline.errors import ConfigError
from pipeline.paths import infra_dir
from pipeline.wire.envelope import EnvelopePolicy

DEFAULT_CONFIG_FILE = "pipeline.toml"
PROJECT_FILE = "pyproject.toml"
"""In the working directory: its [tool.pipeline] table holds settings, below the environment
and pipeline.toml, so that a project's commands find its modules with no variable set."""


def _config_file() -> Path | None:
    named = os.environ.get("PIPELINE_CONFIG_FILE")
    if named:
        path = Path(named)
        if not path.exists():
            raise ConfigError(
                f"PIPELINE_CONFIG_FILE names {path}, which does not exist; "
                "unset it or create the file."
            )
        return path
    local = Path(DEFAULT_CONFIG_FILE)
    return local if local.exists() else None


class ProducerTuning(BaseSettings):
    """Knobs of the shared producer; defaults favour throughput with acks=all."""

    model_config = SettingsConfigDict(extra="forbid")

    batch_bytes: int = Field(
        default=512 * 1024, ge=16 * 1024, description="Largest record batch built per partition."
    )
    linger_ms: int = Field(default=5, ge=0, description="How long publish() waits to fill a batch.")
    max_in_flight_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024 * 1024,
        description="Bytes sent but not yet acknowledged; publishers wait above it.",
    )
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "none"
    request_timeout_ms: int = Field(default=30_000, ge=1_000)
    transaction_timeout_ms: int = Field(
        default=15_000,
        ge=1_000,
        description="Exactly-once workers: how long a dead worker's open transaction "
        "holds back read_committed readers before the broker aborts it.",
    )
    max_request_bytes: int = Field(default=4 * 1024 * 1024, ge=1024 * 1024)


class DatabaseTuning(BaseSettings):
    """The per-process PostgreSQL pool: sized for a worker's partitions, bounded waits."""

    model_config = SettingsConfigDict(extra="forbid")

    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int = Field(
        default=4, ge=1, description="On 2 cores 4 beat 1 and 16 (bench/sink.py)."
    )
    acquire_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="How long a caller waits for a free connection before the call fails "
        "(and goes to retry and the breaker) instead of hanging.",
    )
    command_timeout_s: float = Field(default=30.0, gt=0)
    migrations_dir: Path = Field(
        default_factory=lambda: infra_dir() / "postgres" / "migrations",
        description="SQL files applied in name order by `pipeline db migrate`.",
    )


class ApiKey(BaseSettings):
    """One upstream's key: stored as its SHA-256, never in clear."""

    model_config = SettingsConfigDict(extra="forbid")

    name: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    topics: list[str] = Field(default_factory=lambda: ["*"])
    """Topics (logical names) it may publish to; `*` for all."""


class GatewayTuning(BaseSettings):
    """The HTTP ingest gateway's limits and keys."""

    model_config = SettingsConfigDict(extra="forbid")

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_batch_events: int = Field(default=1000, ge=1)
    api_keys: list[ApiKey] = Field(
        default_factory=list,
        description="Empty: no authentication (development only; the gateway warns).",
    )
    idempotency_window_s: float = Field(default=600.0, gt=0)
    idempotency_max_keys: int = Field(default=100_000, ge=1)
    publish_timeout_s: float = Field(default=10.0, gt=0)
    keep_alive_s: float = Field(
        default=75.0,
        gt=0,
        description=(
            "How long an idle client connection is kept open. Longer than the idle timeout "
            "of the load balancer or client pool in front (often 60 s): whichever side closes "
            "first can close a connection the other is just sending a request on, and that "
            "request fails without an answer."
        ),
    )


class ConsoleTuning(BaseSettings):
    """`pipeline console`: who may act (redrive); anyone who reaches it may look."""

    model_config = SettingsConfigDict(extra="forbid")

    api_keys: list[ApiKey] = Field(
        default_factory=list,
        description="Keys (as the gateway's: name, sha256, topics: DLQ topics or `*`) that "
        "may redrive. Empty: the console is read-only.",
    )


class RegistrySettings(BaseSettings):
    """Where the schema registry is, for topics in a registry format (Avro).

    Confluent's API: Confluent Schema Registry, or Apicurio under
    /apis/ccompat/v7 (`pipeline infra up --registry` starts one and prints it).
    """

    model_config = SettingsConfigDict(extra="forbid")

    url: str = Field(
        default="",
        description="The registry's base URL; empty: no registry (msgpack and json topics "
        "need none).",
    )
    username: str | None = Field(default=None, description="Basic auth user.")
    password: SecretStr | None = Field(default=None, description="Basic auth password.")
    ca_location: Path | None = Field(
        default=None, description="CA bundle for an https registry with a private CA."
    )
    subject_strategy: Literal["topic", "record", "topic_record"] = Field(
        default="topic",
        description="A value schema's subject: <topic>-value (topic), <Record> (record) or "
        "<topic>-<Record> (topic_record), as Confluent's serializers name them.",
    )
    auto_register: bool = Field(
        default=True,
        description="Register a topic's schema on first publish if the subject lacks it "
        "(as Confluent's serializers do); false: only `pipeline topics apply` registers, "
        "and publishing a schema it did not register fails.",
    )


class PipelineSettings(BaseSettings):
    """Where the cluster is and how to talk to it, read from `PIPELINE_*` variables.

    One object for every entry point (worker, producer, gateway, CLI), so a
    setting means the same everywhere; `load_settings` adds the overrides a
    command was given. The settings reference lists every field.
    """

    model_config = SettingsConfigDict(
        env_prefix="PIPELINE_",
        env_nested_delimiter="__",
        extra="ignore",
        pyproject_toml_table_header=("tool", "pipeline"),
    )

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        description="Comma-separated host:port list. `pipeline infra up` prints the local one.",
    )
    client_id: str = "pipeline"
    client: Literal["aiokafka", "confluent"] = Field(
        default="aiokafka",
        description="The Kafka client behind the port: aiokafka (pure Python, on the event "
        "loop) or confluent (librdkafka, its own threads; KIP-447 fencing, incremental "
        "rebalances). `pipeline worker --client` sets it for one worker.",
    )
    rebalance_protocol: Literal["eager", "cooperative", "consumer"] = Field(
        default="eager",
        description="How a group moves partitions: eager (all stop, all reassigned), "
        "cooperative (cooperative-sticky: only the moving ones stop) or consumer (KIP-848, "
        "the broker assigns; Kafka 4). The last two need the confluent client.",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_key_password: SecretStr | None = None

    offset_reset: Literal["earliest", "fail"] = Field(
        default="earliest",
        description="What a worker does with a partition whose committed offset retention "
        "has deleted (records the group never handled are gone): earliest (go on from the "
        "oldest record kept, with a warning and pipeline_offset_resets_total) or fail (the "
        "replica exits 4 naming the partition; `pipeline offsets reset` decides). Jumping "
        "to the end is not offered: it would skip records retention kept, too.",
    )
    otlp_endpoint: str | None = Field(
        default=None,
        description="OpenTelemetry collector (OTLP over HTTP, e.g. http://127.0.0.1:4318): "
        "workers, the gateway and producers record spans and send them there. Unset: no "
        "spans are recorded; records still pass their traceparent header on.",
    )
    catalogue_module: str = Field(
        default="topics",
        description="Module whose CATALOGUE attribute declares the topics.",
    )
    processors_module: str = Field(
        default="consumers",
        description="Module whose PROCESSORS dict names the processors `pipeline worker`, "
        "`scale`, `replay` and `k8s render` run.",
    )
    topic_prefix: str = Field(
        default="",
        description="Prepended to every catalogue topic name (environments sharing a cluster).",
    )
    producer: ProducerTuning = Field(default_factory=ProducerTuning)
    database_url: SecretStr | None = Field(
        default=None,
        description="postgresql://user:password@host:port/db; `pipeline db up` prints one.",
    )
    db: DatabaseTuning = Field(default_factory=DatabaseTuning)
    gateway: GatewayTuning = Field(default_factory=GatewayTuning)
    console: ConsoleTuning = Field(default_factory=ConsoleTuning)
    schema_registry: RegistrySettings = Field(default_factory=RegistrySettings)
    envelope: EnvelopePolicy = Field(
        default_factory=EnvelopePolicy,
        description="What workers do with records whose key or headers are wrong "
        "(pipeline.wire.envelope); PIPELINE_ENVELOPE__KEY_MISMATCH=accept relaxes one.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file()
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        project = Path(PROJECT_FILE)
        if project.is_file():
            # A project's own pyproject.toml: [tool.pipeline] (what `pipeline new` writes).
            sources.append(PyprojectTomlConfigSettingsSource(settings_cls, project))
        return tuple(sources)

    @model_validator(mode="after")
    def _incremental_rebalances_need_confluent(self) -> PipelineSettings:
        if self.rebalance_protocol != "eager" and self.client != "confluent":
            raise ValueError(
                f"rebalance_protocol {self.rebalance_protocol} needs client confluent "
                "(aiokafka rebalances eagerly only): set PIPELINE_CLIENT=confluent or "
                "PIPELINE_REBALANCE_PROTOCOL=eager"
            )
        return self

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> PipelineSettings:
        if self.security_protocol.startswith("SASL") and (
            self.sasl_mechanism is None or self.sasl_username is None or self.sasl_password is None
        ):
            raise ValueError(
                f"security_protocol {self.security_protocol} needs sasl_mechanism, "
                "sasl_username and sasl_password (PIPELINE_SASL_MECHANISM, "
                "PIPELINE_SASL_USERNAME, PIPELINE_SASL_PASSWORD)"
            )
        return self

    def ssl_context(self) -> ssl.SSLContext | None:
        if "SSL" not in self.security_protocol:
            return None
        context = ssl.create_default_context(
            cafile=str(self.ssl_cafile) if self.ssl_cafile else None
        )
        if self.ssl_certfile:
            context.load_cert_chain(
                str(self.ssl_certfile),
                str(self.ssl_keyfile) if self.ssl_keyfile else None,
                self.ssl_key_password.get_secret_value() if self.ssl_key_password else None,
            )
        return context


def load_settings(**overrides: Any) -> PipelineSettings:
    """Settings with a ConfigError (not a pydantic traceback) when they are wrong."""
    from pydantic import ValidationError

    try:
        return PipelineSettings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid settings ({problems}); see `pipeline --help`") from exc
