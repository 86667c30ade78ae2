"""Avro bodies in Confluent's framing: what a registry-minded team writes and reads.

fastavro does the Avro (the binary encoding, logical types, and resolving
an older writer's schema into the model's); pipeline.wire.registry knows
the ids. The framing itself is five bytes: a zero, then the schema id.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from enum import Enum
from typing import Any

import fastavro
from pydantic import BaseModel, ValidationError

from pipeline.catalogue import TopicSpec
from pipeline.errors import UndecodableRecordError
from pipeline.wire.formats import model_mentions
from pipeline.wire.registry import (
    FRAMING_BYTES,
    current_registry,
    framed_writer,
    registry_for,
    schema_id_of,
)
from pipeline.wire.validation import invalid_event


def avro_writer(spec: TopicSpec[BaseModel]) -> Callable[[BaseModel], bytes]:
    """Events of the topic to framed Avro; the registry is asked once, on first use."""
    registry = registry_for(spec)
    dump = spec.event_model.__pydantic_serializer__.to_python
    write = fastavro.schemaless_writer
    # Walking every datum for enum members cost half the encode; only models with one pay it.
    plain = _plain_enums if model_mentions(spec.event_model, "enum") else _as_is

    def encode(event: BaseModel) -> bytes:
        schema = registry.writer(spec)
        out = io.BytesIO()
        out.write(schema.prefix)
        write(out, schema.parsed, plain(dump(event)))
        return out.getvalue()

    return encode


def _as_is(value: Any) -> Any:
    return value


def _plain_enums(value: Any) -> Any:
    """Enum members as their values, which is what Avro enums and primitives hold."""
    if isinstance(value, dict):
        return {k: _plain_enums(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain_enums(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    return value


def read_framed_avro(
    spec: TopicSpec[BaseModel],
    value: bytes | None,
    partition: int | None,
    offset: int | None,
    resolve: bool,
) -> tuple[int, Any]:
    """The schema id and datum of a framed value, read with its writer's schema (resolved
    into the model's when `resolve`); UndecodableRecordError when the body does not match."""
    schema_id, writer = framed_writer(spec, value, partition, offset)
    assert value is not None
    reader = registry_for(spec).reader_schema(spec) if resolve else writer
    try:
        return schema_id, fastavro.schemaless_reader(
            io.BytesIO(value[FRAMING_BYTES:]), writer, None if writer is reader else reader
        )
    except Exception as exc:  # fastavro raises EOFError, ValueError, SchemaResolutionError...
        raise UndecodableRecordError(
            f"value does not match schema id {schema_id} ({type(exc).__name__}: {exc})",
            topic=spec.name,
            partition=partition,
            offset=offset,
        ) from exc


def decode_avro(
    spec: TopicSpec[BaseModel],
    value: bytes | None,
    partition: int | None,
    offset: int | None,
) -> BaseModel:
    """A framed Avro value to the topic's model, or the error that names what is wrong."""
    schema_id, fields = read_framed_avro(spec, value, partition, offset, resolve=True)
    if type(fields) is not dict:
        raise UndecodableRecordError(
            f"schema id {schema_id} is not a record schema (it gave {type(fields).__name__})",
            topic=spec.name,
            partition=partition,
            offset=offset,
        )
    try:
        return spec.event_model.__pydantic_validator__.validate_python(fields)  # type: ignore[no-any-return]
    except ValidationError as exc:
        raise invalid_event(spec, exc, partition, offset) from exc


def framed_avro_for_people(value: bytes | None) -> dict[str, object] | None:
    """A framed Avro (or JSON Schema) value as its schema id and JSON-safe fields.

    For `pipeline dlq inspect`.

    None when the value is not framed, no registry is configured, or the
    registry does not have its schema: the caller then shows the bytes.
    Tools only: a record that is in the DLQ is not promised to decode.
    """
    schema_id = schema_id_of(value)
    registry = current_registry()
    if schema_id is None or registry is None or value is None:
        return None
    try:
        known = registry.known_schema(schema_id)
        if known is None:
            return None
        body = value[FRAMING_BYTES:]
        if known.schema_type == "JSON":
            return {"schema_id": schema_id, "fields": json.loads(body)}
        if known.schema_type != "AVRO":
            return None
        fields = fastavro.schemaless_reader(io.BytesIO(body), known.parsed, None)
    except Exception:  # noqa: BLE001 - a record in the DLQ may be there for exactly this
        return None
    return {"schema_id": schema_id, "fields": json.loads(json.dumps(fields, default=str))}
