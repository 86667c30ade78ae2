"""A topic's body format: how its events are written as bytes, and read back.

The event model stays the one description of an event; the format only
says how its fields travel. `msgpack` is this project's own (compact, and a
decimal stays a string); `json` is what most other services write, so a
pipeline can read an upstream team's topic and write one they can read;
`avro` is Avro in Confluent's framing, its schema derived from the model and
kept in a schema registry (pipeline.wire.registry); `json_schema` is JSON
in the same framing, its JSON Schema (pydantic's) in the registry;
`protobuf` is a generated message class's bytes in that framing
(pipeline.wire.protobuf_body);
`debezium` and `debezium_avro` are a database's change events
(pipeline.wire.change_events); `raw` hands the
record's bytes to the handler as they are, for topics nobody described.

How JSON is read without losing a decimal is in pipeline.wire.json_body.
"""

from __future__ import annotations

import functools
from typing import Literal

from pydantic import BaseModel, ConfigDict

Format = Literal[
    "msgpack", "json", "avro", "json_schema", "protobuf", "debezium", "debezium_avro", "raw"
]
FORMATS: tuple[Format, ...] = (
    "msgpack",
    "json",
    "avro",
    "json_schema",
    "protobuf",
    "debezium",
    "debezium_avro",
    "raw",
)
READ_ONLY: frozenset[str] = frozenset({"debezium", "debezium_avro"})
"""Formats a pipeline reads and never writes: another system's envelope."""
OWN_KEYS: frozenset[str] = frozenset({"raw", "debezium", "debezium_avro"})
"""Formats whose Kafka key is the writer's own, not the event's key field as text."""


class RawRecord(BaseModel):
    """A record of a topic declared with `format="raw"`: its key and value bytes, as stored.

    For topics nobody described (or whose bytes only the handler
    understands): no decoding, no validation, nothing dead-lettered for its
    shape. Publish one to write bytes of your own; a null key lets the
    client choose the partition, a null value is a tombstone.

        UPSTREAM = TopicSpec("legacy.feed", RawRecord, key_field="key", format="raw")
    """

    model_config = ConfigDict(frozen=True)

    key: bytes | None = None
    value: bytes | None = None


@functools.cache
def model_mentions(model: type[BaseModel], core_type: str) -> bool:
    """Whether pydantic's core schema of `model` has a `core_type` anywhere (`decimal`,
    `enum`; nested models, lists and unions included): the codecs pay for exact decimals
    or enum conversion only for models that need them."""
    return _mentions(model.__pydantic_core_schema__, core_type)


def _mentions(schema: object, core_type: str) -> bool:
    if isinstance(schema, dict):
        return schema.get("type") == core_type or any(
            _mentions(value, core_type) for value in schema.values()
        )
    if isinstance(schema, list | tuple):
        return any(_mentions(item, core_type) for item in schema)
    return False
