"""JSON bodies in Confluent's framing, their JSON Schema in the registry (format json_schema).

What Confluent's JSONSerializer writes: a zero byte, the schema id, then a
JSON object. The schema registered is pydantic's JSON Schema of the model,
so other teams' JSON Schema tooling validates what we write; reading, the
model validates (exactly, decimals included: pipeline.wire.json_body), and
the id is only checked to be one the registry has, as a JSON schema.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel

from pipeline.catalogue import TopicSpec
from pipeline.wire.json_body import decode_json
from pipeline.wire.registry import FRAMING_BYTES, framed_writer, registry_for


def json_schema_writer(spec: TopicSpec[BaseModel]) -> Callable[[BaseModel], bytes]:
    """Events of the topic to framed JSON; the registry is asked once, on first use."""
    registry = registry_for(spec)
    to_json = spec.event_model.__pydantic_serializer__.to_json

    def encode(event: BaseModel) -> bytes:
        return registry.writer(spec).prefix + to_json(event)

    return encode


def decode_json_schema(
    spec: TopicSpec[BaseModel],
    value: bytes | None,
    partition: int | None,
    offset: int | None,
    version: int | None,
) -> BaseModel:
    framed_writer(spec, value, partition, offset)  # an id the registry has, of its type
    assert value is not None
    return decode_json(spec, value[FRAMING_BYTES:], partition, offset, version)
