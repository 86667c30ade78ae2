"""Debezium change streams: creates, updates, snapshot reads, deletes, tombstones, truncates.

The records are shaped as Debezium writes them (the JSON converter with and
without its schema wrapper, and Avro through a registry via Confluent's own
serializer); a processor keeps a copy of the table from them, and must end
with exactly the rows the database has.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from pydantic import BaseModel

from pipeline import Change, Context, Processor, TestPipeline, TopicSpec
from pipeline.errors import ConfigError
from pipeline.wire.codec import encode_event
from pipeline.wire.registry import SchemaRegistry


class Customer(BaseModel):
    id: int
    email: str


CUSTOMERS = TopicSpec("db.inventory.customers", Customer, key_field="id", format="debezium")
CUSTOMERS_AVRO = TopicSpec(
    "db.inventory.customers.avro", Customer, key_field="id", format="debezium_avro"
)
SOURCE = {"connector": "postgresql", "db": "inventory", "table": "customers", "lsn": 1}


def event(op: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    return {"before": before, "after": after, "source": SOURCE, "op": op, "ts_ms": 1700000000000}


def key(customer_id: int) -> bytes:
    return json.dumps({"id": customer_id}).encode()


STREAM: list[tuple[bytes, dict[str, Any] | None]] = [
    (key(1), event("r", None, {"id": 1, "email": "a@x"})),  # snapshot
    (key(2), event("c", None, {"id": 2, "email": "b@x"})),
    (key(1), event("u", {"id": 1, "email": "a@x"}, {"id": 1, "email": "a@y"})),
    (key(2), event("d", {"id": 2, "email": "b@x"}, None)),
    (key(2), None),  # the tombstone after a delete
    (key(3), event("c", None, {"id": 3, "email": "c@x"})),
]


class Mirror:
    """What a handler built from the changes: the table as the database has it."""

    def __init__(self) -> None:
        self.rows: dict[int, str] = {}
        self.ops: list[str] = []

    async def apply(self, change: Change[Customer], ctx: Context) -> None:
        self.ops.append(change.op)
        if change.op == "delete":
            row_id = change.row.id if change.row is not None else change.key["id"]
            self.rows.pop(row_id, None)
        elif change.row is not None:
            self.rows[change.row.id] = change.row.email


@pytest.mark.parametrize("wrapped", [False, True], ids=["plain", "schema-payload"])
async def test_a_debezium_stream_leaves_exactly_the_databases_rows(wrapped: bool) -> None:
    mirror = Mirror()
    async with TestPipeline(Processor("mirror", CUSTOMERS, mirror.apply)) as pipeline:
        for record_key, value in STREAM:
            body = None
            if value is not None:
                body = json.dumps({"schema": {}, "payload": value} if wrapped else value).encode()
            await pipeline.publish_raw(CUSTOMERS, body, key=record_key)
        await pipeline.processed()
        assert pipeline.dead_letters() == []
    assert mirror.rows == {1: "a@y", 3: "c@x"}
    assert mirror.ops == ["read", "create", "update", "delete", "delete", "create"]


async def test_an_update_carries_both_images_and_the_source() -> None:
    seen: list[Change[Customer]] = []

    async def keep(change: Change[Customer], ctx: Context) -> None:
        seen.append(change)

    async with TestPipeline(Processor("keep", CUSTOMERS, keep)) as pipeline:
        record_key, value = STREAM[2]
        await pipeline.publish_raw(CUSTOMERS, json.dumps(value).encode(), key=record_key)
        await pipeline.processed()
    [change] = seen
    assert change.before == Customer(id=1, email="a@x")
    assert change.row == Customer(id=1, email="a@y")
    assert change.key == {"id": 1} and change.source["table"] == "customers"
    assert change.ts_ms == 1700000000000


@pytest.mark.parametrize(
    ("value", "error", "reason"),
    [
        (b"not json", "UndecodableRecordError", "value is not JSON"),
        (b'{"after": {"id": 1}}', "UndecodableRecordError", "not a Debezium change event"),
        (b'{"op": "x", "after": null}', "UndecodableRecordError", "Debezium op 'x' is not one of"),
        (b'{"op": "c", "after": {"id": "nine", "email": 1}}', "EventValidationError", "row"),
    ],
)
async def test_what_is_not_a_change_event_is_dead_lettered_with_its_reason(
    value: bytes, error: str, reason: str
) -> None:
    mirror = Mirror()
    async with TestPipeline(Processor("mirror", CUSTOMERS, mirror.apply)) as pipeline:
        await pipeline.publish_raw(CUSTOMERS, value, key=key(1))
        await pipeline.processed()
        [dead] = pipeline.dead_letters()
    assert dead.error_type == error and reason in dead.error_message
    assert mirror.rows == {}


def test_a_change_event_topic_is_never_written() -> None:
    with pytest.raises(ConfigError, match="reads and never writes"):
        encode_event(CUSTOMERS, Customer(id=1, email="a"))


ENVELOPE = {
    "type": "record",
    "name": "Envelope",
    "namespace": "db.inventory.customers",
    "fields": [
        {
            "name": "before",
            "type": [
                "null",
                {
                    "type": "record",
                    "name": "Value",
                    "fields": [
                        {"name": "id", "type": "int"},
                        {"name": "email", "type": "string"},
                    ],
                },
            ],
            "default": None,
        },
        {"name": "after", "type": ["null", "Value"], "default": None},
        {
            "name": "source",
            "type": {
                "type": "record",
                "name": "Source",
                "namespace": "io.debezium.connector.postgresql",
                "fields": [{"name": "table", "type": "string"}],
            },
        },
        {"name": "op", "type": "string"},
        {"name": "ts_ms", "type": ["null", "long"], "default": None},
    ],
}


async def test_debeziums_avro_envelope_through_the_registry(registry: SchemaRegistry) -> None:
    serialize = AvroSerializer(registry.client, json.dumps(ENVELOPE))
    context = SerializationContext(CUSTOMERS_AVRO.name, MessageField.VALUE)
    mirror = Mirror()
    async with TestPipeline(Processor("mirror", CUSTOMERS_AVRO, mirror.apply)) as pipeline:
        for record_key, value in STREAM:
            body = None
            if value is not None:
                body = serialize({**value, "source": {"table": "customers"}}, context)
            await pipeline.publish_raw(CUSTOMERS_AVRO, body, key=record_key)
        await pipeline.processed()
        assert pipeline.dead_letters() == []
    assert mirror.rows == {1: "a@y", 3: "c@x"}


def test_the_change_type_is_public_and_typed_by_the_row() -> None:
    change = Change[Customer].model_validate({"op": "create", "row": {"id": 1, "email": "e"}})
    assert change.row == Customer(id=1, email="e")
    assert isinstance(change, BaseModel)
