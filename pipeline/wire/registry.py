"""The schema registry as this process sees it: ids it has resolved, subjects it writes to.

Records of a registry format carry Confluent's framing: a zero byte, the
writer's schema id (4 bytes, big-endian), then the body. A reader needs the
writer's schema for that id; a writer needs its own schema's id under the
topic's subject. Both come from the registry over HTTP (confluent-kafka's
client speaks the protocol), and both are cached for the life of the
process: ids never change meaning.

Decoding stays synchronous on the worker's hot path, so the registry is
asked *before* a record is decoded (`fetch`, awaited off the event loop);
an id the registry does not know is remembered as unknown and the record
is dead-lettered with that reason, while a registry that does not answer
raises `DependencyError`: the partition waits, nothing is dead-lettered for
it. A process has one registry (`use_registry`), set from the settings by
whatever opens the producer.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from pipeline.catalogue import TopicSpec
from pipeline.errors import ConfigError, UndecodableRecordError
from pipeline.resilience.breaker import DependencyError
from pipeline.wire.avro_schema import avro_schema

if TYPE_CHECKING:
    from pipeline.settings import RegistrySettings

DEPENDENCY = "schema-registry"
MAGIC = 0
FRAMING_BYTES = 5
REGISTRY_FORMATS = frozenset({"avro", "json_schema", "protobuf", "debezium_avro"})
SCHEMA_TYPES = {
    "avro": "AVRO",
    "json_schema": "JSON",
    "protobuf": "PROTOBUF",
    "debezium_avro": "AVRO",
}
"""The registry's name for each format's schemas."""
NOT_FOUND = 404


@dataclass(frozen=True)
class KnownSchema:
    """A schema the registry holds: its type (AVRO, JSON) and its parsed form."""

    schema_type: str
    parsed: Any


@dataclass(frozen=True)
class WriterSchema:
    """What encoding a topic's events needs: its schema id, and the parsed schema."""

    schema_id: int
    subject: str
    parsed: Any
    prefix: bytes
    """The framing: magic byte and schema id, ready to prepend."""


def schema_id_of(value: bytes | None) -> int | None:
    """The writer's schema id of a framed value, or None when it is not framed."""
    if value is None or len(value) < FRAMING_BYTES or value[0] != MAGIC:
        return None
    return int.from_bytes(value[1:FRAMING_BYTES], "big")


def client_config(settings: RegistrySettings) -> dict[str, Any]:
    """confluent-kafka's registry client configuration from the settings."""
    config: dict[str, Any] = {"url": settings.url}
    if settings.username is not None:
        password = settings.password.get_secret_value() if settings.password else ""
        config["basic.auth.user.info"] = f"{settings.username}:{password}"
    if settings.ca_location is not None:
        config["ssl.ca.location"] = str(settings.ca_location)
    return config


def framed_schema_id(
    spec: TopicSpec[BaseModel], value: bytes | None, partition: int | None, offset: int | None
) -> int:
    """The schema id of a registry-format value; UndecodableRecordError naming what is wrong."""
    where: dict[str, Any] = {"topic": spec.name, "partition": partition, "offset": offset}
    if value is None:
        raise UndecodableRecordError("record has no value (a tombstone?)", **where)
    if len(value) < FRAMING_BYTES or value[0] != MAGIC:
        first = f"0x{value[0]:02x}" if value else "nothing"
        raise UndecodableRecordError(
            f"value is not in the registry's wire format (starts with {first}, "
            f"{len(value)} bytes; expected 0x00 and a 4-byte schema id)",
            **where,
        )
    return int.from_bytes(value[1:FRAMING_BYTES], "big")


def framed_writer(
    spec: TopicSpec[BaseModel], value: bytes | None, partition: int | None, offset: int | None
) -> tuple[int, Any]:
    """A registry-format value's schema id and its writer's parsed schema, or the
    UndecodableRecordError that says why it has neither (pipeline.wire.*_body read this)."""
    schema_id = framed_schema_id(spec, value, partition, offset)
    return schema_id, registry_for(spec).writer_schema(schema_id, spec, partition, offset)


def subject_for(spec: TopicSpec[BaseModel], strategy: str) -> str:
    record = spec.event_type  # the Avro record's full name (pipeline.wire.avro_schema)
    if strategy == "record":
        return record
    if strategy == "topic_record":
        return f"{spec.name}-{record}"
    return f"{spec.name}-value"


def schema_text(spec: TopicSpec[BaseModel]) -> str:
    """The schema a topic's model registers as, derived from the model (or, for protobuf,
    its message class's file descriptor, base64, as Confluent's serializer registers it)."""
    if spec.format == "protobuf":
        return base64.standard_b64encode(
            spec.protobuf_message.DESCRIPTOR.file.serialized_pb
        ).decode()
    if spec.format == "json_schema":
        schema = spec.event_model.model_json_schema()
        schema.setdefault("title", spec.event_type)
        return json.dumps(schema, separators=(",", ":"), sort_keys=True)
    return json.dumps(avro_schema(spec.event_model, spec.event_type), separators=(",", ":"))


def schema_type(spec: TopicSpec[BaseModel]) -> str:
    return SCHEMA_TYPES[spec.format]


class SchemaRegistry:
    """One registry client with the process's caches; thread-safe, since lookups run off-loop."""

    def __init__(
        self,
        client: Any,
        url: str,
        subject_strategy: str = "topic",
        auto_register: bool = True,
    ) -> None:
        self.client = client
        self.url = url
        self.subject_strategy = subject_strategy
        self.auto_register = auto_register
        self._lock = threading.RLock()
        self._writers: dict[tuple[str, type[BaseModel]], WriterSchema] = {}
        self._known: dict[int, KnownSchema | None] = {}
        """schema id → the writer's schema, or None for an id the registry does not have."""
        self._readers: dict[tuple[str, type[BaseModel]], Any] = {}

    @classmethod
    def from_settings(cls, settings: RegistrySettings) -> SchemaRegistry:
        from confluent_kafka.schema_registry import SchemaRegistryClient

        return cls(
            SchemaRegistryClient(client_config(settings)),
            settings.url,
            settings.subject_strategy,
            settings.auto_register,
        )

    # -- writing -------------------------------------------------------------------------

    def writer(self, spec: TopicSpec[BaseModel]) -> WriterSchema:
        """The topic's schema id, registering (or looking up) on first use in this process."""
        key = (spec.name, spec.event_model)
        found = self._writers.get(key)
        if found is not None:
            return found
        with self._lock:
            found = self._writers.get(key)
            if found is None:
                found = self._writers[key] = self._register(spec)
        return found

    async def prepare(self, spec: TopicSpec[BaseModel]) -> WriterSchema:
        """`writer`, off the event loop: the first publish to a topic asks the registry."""
        found = self._writers.get((spec.name, spec.event_model))
        if found is not None:
            return found
        return await asyncio.to_thread(self.writer, spec)

    def _register(self, spec: TopicSpec[BaseModel]) -> WriterSchema:
        from confluent_kafka.schema_registry import Schema
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        subject = subject_for(spec, self.subject_strategy)
        text, kind = schema_text(spec), schema_type(spec)
        try:
            if self.auto_register:
                schema_id = int(self.client.register_schema(subject, Schema(text, kind)))
            else:
                schema_id = int(self.client.lookup_schema(subject, Schema(text, kind)).schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == NOT_FOUND:
                raise ConfigError(
                    f"topic {spec.name!r}: subject {subject!r} at {self.url} has no schema like "
                    f"{spec.event_model.__name__}'s; register it with `pipeline topics apply` "
                    "(auto_register is off)"
                ) from exc
            if exc.http_status_code == 409:
                raise ConfigError(
                    f"topic {spec.name!r}: the registry at {self.url} refuses "
                    f"{spec.event_model.__name__}'s schema under subject {subject!r} as "
                    f"incompatible with its latest version ({exc.error_message}); "
                    "`pipeline schemas check` names the field"
                ) from exc
            raise DependencyError(DEPENDENCY, exc) from exc
        except Exception as exc:
            raise DependencyError(DEPENDENCY, exc) from exc
        known = _parse(text, kind)
        parsed = known.parsed
        with self._lock:
            self._known[schema_id] = known
            # Its own records then decode without schema resolution (the same object).
            self._readers.setdefault((spec.event_type, spec.event_model), parsed)
        return WriterSchema(
            schema_id, subject, parsed, bytes([MAGIC]) + schema_id.to_bytes(4, "big")
        )

    # -- reading -------------------------------------------------------------------------

    def knows(self, schema_id: int) -> bool:
        return schema_id in self._known

    async def fetch(self, schema_id: int) -> None:
        """Learn a writer's schema (or that the registry has none with this id), off the loop."""
        if schema_id not in self._known:
            await asyncio.to_thread(self._fetch, schema_id)

    def _fetch(self, schema_id: int) -> None:
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            schema = self.client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code != NOT_FOUND:
                raise DependencyError(DEPENDENCY, exc) from exc
            with self._lock:
                self._known[schema_id] = None
            return
        except Exception as exc:
            raise DependencyError(DEPENDENCY, exc) from exc
        known = _parse(schema.schema_str, schema.schema_type or "AVRO")
        with self._lock:
            self._known[schema_id] = known

    def known_schema(self, schema_id: int) -> KnownSchema | None:
        """The schema of an id, asking the registry if needed; None if it has none."""
        if schema_id not in self._known:
            self._fetch(schema_id)
        return self._known[schema_id]

    def writer_schema(
        self, schema_id: int, spec: TopicSpec[BaseModel], partition: int | None, offset: int | None
    ) -> Any:
        """The parsed schema a record was written with; UndecodableRecordError if unknown,
        or if it is not of the topic's format (a JSON schema's id on an avro topic)."""
        if schema_id not in self._known:
            self._fetch(schema_id)  # only when `fetch` was not awaited first (tools, tests)
        known = self._known[schema_id]
        if known is not None and known.schema_type != schema_type(spec):
            raise UndecodableRecordError(
                f"schema id {schema_id} is a {known.schema_type} schema, but topic {spec.name!r} "
                f"is {spec.format}; the record was written for another format",
                topic=spec.name,
                partition=partition,
                offset=offset,
            )
        if known is None:
            raise UndecodableRecordError(
                f"schema id {schema_id} is not in the registry at {self.url} (subject "
                f"{subject_for(spec, self.subject_strategy)!r} expected); the record was "
                "written against another registry, or its schema was deleted",
                topic=spec.name,
                partition=partition,
                offset=offset,
            )
        return known.parsed

    def reader_schema(self, spec: TopicSpec[BaseModel]) -> Any:
        """The model's own schema, which older writers' records are resolved into."""
        key = (spec.event_type, spec.event_model)
        found = self._readers.get(key)
        if found is None:
            found = self._readers[key] = _parse(schema_text(spec), schema_type(spec)).parsed
        return found


def _parse(text: str, kind: str) -> KnownSchema:
    if kind == "AVRO":
        import fastavro

        return KnownSchema(kind, fastavro.parse_schema(json.loads(text)))
    return KnownSchema(kind, json.loads(text) if kind == "JSON" else text)


_current: SchemaRegistry | None = None


def use_registry(registry: SchemaRegistry | None) -> SchemaRegistry | None:
    """Make `registry` the process's; the one it replaces (tests put it back)."""
    global _current
    previous, _current = _current, registry
    return previous


def configure_registry(settings: RegistrySettings) -> None:
    """The settings' registry as the process's, unless one for the same URL is in use."""
    if settings.url and (_current is None or _current.url != settings.url):
        use_registry(SchemaRegistry.from_settings(settings))


def current_registry() -> SchemaRegistry | None:
    return _current


def registry_for(spec: TopicSpec[BaseModel]) -> SchemaRegistry:
    if _current is None:
        raise ConfigError(
            f"topic {spec.name!r} is in {spec.format}, which needs a schema registry: set "
            "PIPELINE_SCHEMA_REGISTRY__URL (`pipeline infra up --registry` starts one)"
        )
    return _current
