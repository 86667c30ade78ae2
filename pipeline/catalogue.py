"""Topic declarations: the one place that says what a topic is and carries.

The application declares its topics (in `topics/`); the library only knows
the `TopicSpec` shape and loads the application's catalogue by module name
(`PIPELINE_CATALOGUE_MODULE`), so `pipeline` never imports the application.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel

from pipeline.app_modules import import_app_module
from pipeline.errors import ConfigError, UnknownTopicError
from pipeline.kafka.record_size import BROKER_DEFAULT_MAX_MESSAGE_BYTES
from pipeline.wire.avro_schema import avro_schema
from pipeline.wire.formats import FORMATS, Format, RawRecord
from pipeline.wire.schema_compat import MODES, CompatibilityMode

CleanupPolicy = Literal["delete", "compact", "compact,delete"]
DLQ_SUFFIX = ".dlq"
DAY_MS = 24 * 60 * 60 * 1000
DLQ_HEADROOM_BYTES = 64 * 1024
"""What a DLQ topic's max.message.bytes has over its source's: room for the dlq-* headers."""

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""A body's fields at one schema version to the next version's."""

EventT_co = TypeVar("EventT_co", bound=BaseModel, covariant=True)
"""A topic's event model: `TopicSpec[Order]` is also a `TopicSpec[BaseModel]`."""


@dataclass(frozen=True)
class TopicSpec(Generic[EventT_co]):
    """A topic as the catalogue wants it on the cluster, typed by the events it carries."""

    name: str
    event_model: type[EventT_co]
    key_field: str
    partitions: int = 6
    replication_factor: int = 3
    min_insync_replicas: int = 2
    retention_ms: int | None = 7 * DAY_MS
    cleanup_policy: CleanupPolicy = "delete"
    dlq: bool = True
    event_type: str = ""
    schema_version: int = 1
    is_dlq: bool = False
    max_message_bytes: int | None = None
    """The topic's max.message.bytes; None leaves it to the broker (and to operators)."""
    upcasters: Mapping[int, Upcaster] = dataclasses.field(
        default_factory=dict, compare=False, hash=False
    )
    """{1: v1_to_v2, 2: v2_to_v3}: each turns a body of that version into the next one's
    fields, so that old events reach the current model (pipeline.wire.versions)."""
    compatibility: CompatibilityMode = "backward"
    """What `topics apply` demands of a changed model (pipeline.wire.schema_compat), and
    whether a body newer than the consumer is read (forward, full) or dead-lettered."""
    format: Format = "msgpack"
    """How bodies travel (pipeline.wire.formats): `msgpack` (this project's own), `json`
    (what other services read and write), `avro`, `json_schema` and `protobuf` (through a
    schema registry), `debezium` and `debezium_avro` (a database's change events, read
    only), or `raw` (a `RawRecord` of bytes, undecoded)."""
    protobuf_message: Any = dataclasses.field(default=None, compare=False, hash=False)
    """A `protobuf` topic's generated message class, whose fields are the model's."""

    def __post_init__(self) -> None:
        if not self.name or any(c not in _TOPIC_CHARS for c in self.name) or len(self.name) > 249:
            raise ConfigError(
                f"topic name {self.name!r} is not a legal Kafka topic name "
                "(letters, digits, '.', '_', '-'; at most 249 characters)"
            )
        if self.partitions < 1:
            raise ConfigError(f"topic {self.name!r}: partitions must be at least 1")
        if self.replication_factor < 1:
            raise ConfigError(f"topic {self.name!r}: replication_factor must be at least 1")
        if self.key_field not in self.event_model.model_fields:
            raise ConfigError(
                f"topic {self.name!r}: key field {self.key_field!r} is not a field of "
                f"{self.event_model.__name__} (fields: {', '.join(self.event_model.model_fields)})"
            )
        if self.format not in FORMATS:
            raise ConfigError(
                f"topic {self.name!r}: format {self.format!r} is not one of {', '.join(FORMATS)}"
            )
        raw = self.format == "raw"
        if raw != issubclass(self.event_model, RawRecord) or (raw and self.key_field != "key"):
            raise ConfigError(
                f"topic {self.name!r}: a raw topic carries RawRecord (key and value bytes), "
                "and RawRecord belongs on a raw topic: declare "
                f'TopicSpec({self.name!r}, RawRecord, key_field="key", format="raw")'
            )
        if self.format == "avro":
            avro_schema(self.event_model)  # a type with no Avro mapping is refused here, by name
        if (self.format == "protobuf") != (self.protobuf_message is not None):
            raise ConfigError(
                f"topic {self.name!r}: a protobuf topic names its generated message class "
                "(protobuf_message=...), and only a protobuf topic does"
            )
        if self.max_message_bytes is not None and self.max_message_bytes < 1024:
            raise ConfigError(f"topic {self.name!r}: max_message_bytes must be at least 1024")
        if not self.event_type:
            object.__setattr__(self, "event_type", self.event_model.__name__)
        if self.schema_version < 1:
            raise ConfigError(f"topic {self.name!r}: schema_version must be at least 1")
        for version, upcaster in self.upcasters.items():
            if not (isinstance(version, int) and 1 <= version < self.schema_version):
                raise ConfigError(
                    f"topic {self.name!r}: upcaster for version {version!r}, but versions "
                    f"before {self.schema_version} (the current one) are 1 to "
                    f"{self.schema_version - 1}"
                )
            if not callable(upcaster):
                raise ConfigError(f"topic {self.name!r}: upcaster {version} is not callable")
        if self.compatibility not in MODES:
            raise ConfigError(
                f"topic {self.name!r}: compatibility {self.compatibility!r} is not one of "
                f"{', '.join(MODES)}"
            )

    def topic_configs(self, replication_factor: int) -> dict[str, str]:
        """Kafka topic configs the catalogue manages; others are left alone."""
        configs = {
            "cleanup.policy": self.cleanup_policy,
            "min.insync.replicas": str(min(self.min_insync_replicas, replication_factor)),
        }
        configs["retention.ms"] = str(self.retention_ms if self.retention_ms is not None else -1)
        if self.max_message_bytes is not None:
            configs["max.message.bytes"] = str(self.max_message_bytes)
        return configs

    @property
    def dlq_name(self) -> str:
        return self.name + DLQ_SUFFIX

    def dlq_spec(self) -> TopicSpec[EventT_co]:
        """The dead-letter topic: same partitions and key, kept longer, never compacted.

        Its records are a source record plus headers, so it takes larger
        records than its source: a record at the source's limit still fits
        whole, headers and all (pipeline.runtime.dead_letters shrinks what does not).
        """
        source_limit = self.max_message_bytes or BROKER_DEFAULT_MAX_MESSAGE_BYTES
        return dataclasses.replace(
            self,
            name=self.dlq_name,
            cleanup_policy="delete",
            retention_ms=max(self.retention_ms or 0, 14 * DAY_MS) if self.retention_ms else None,
            dlq=False,
            is_dlq=True,
            max_message_bytes=source_limit + DLQ_HEADROOM_BYTES,
        )

    def with_name(self, name: str) -> TopicSpec[EventT_co]:
        return dataclasses.replace(self, name=name)


_TOPIC_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


class Catalogue:
    """The declared topics, looked up by their logical name."""

    def __init__(self, specs: Iterable[TopicSpec[BaseModel]], prefix: str = "") -> None:
        self.prefix = prefix
        self._by_name: dict[str, TopicSpec[BaseModel]] = {}
        for spec in specs:
            if spec.name in self._by_name:
                raise ConfigError(f"topic {spec.name!r} is declared twice in the catalogue")
            self._by_name[spec.name] = spec

    def with_prefix(self, prefix: str) -> Catalogue:
        """The same topics under `prefix + name` on the cluster."""
        if not prefix:
            return self
        return Catalogue((spec.with_name(prefix + spec.name) for spec in self), prefix=prefix)

    def __iter__(self) -> Iterator[TopicSpec[BaseModel]]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def get(self, name: str) -> TopicSpec[BaseModel]:
        """Accepts the logical name (`orders`) or the prefixed one on the cluster."""
        spec = self._by_name.get(name) or self._by_name.get(self.prefix + name)
        if spec is None:
            for candidate in self:
                if candidate.dlq and candidate.dlq_name in (name, self.prefix + name):
                    return candidate.dlq_spec()
            raise UnknownTopicError(name, [s.name.removeprefix(self.prefix) for s in self])
        return spec

    def with_dlqs(self) -> list[TopicSpec[BaseModel]]:
        """Every topic the cluster should have: the declared ones and their DLQs."""
        specs: list[TopicSpec[BaseModel]] = []
        for spec in self:
            specs.append(spec)
            if spec.dlq:
                specs.append(spec.dlq_spec())
        return specs


def load_catalogue(module_name: str, prefix: str = "") -> Catalogue:
    """Import the application's catalogue by name (e.g. `topics`)."""
    module = import_app_module(module_name, "topic catalogue", "PIPELINE_CATALOGUE_MODULE")
    catalogue = getattr(module, "CATALOGUE", None)
    if not isinstance(catalogue, Catalogue):
        raise ConfigError(
            f"module {module_name!r} has no CATALOGUE of type pipeline.catalogue.Catalogue"
        )
    return catalogue.with_prefix(prefix)
