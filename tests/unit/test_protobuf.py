"""Protobuf topics: a generated message class, Confluent's framing with message indexes.

Confluent's own ProtobufSerializer and ProtobufDeserializer are the other
side; a mock registry stands in (a real one: tests/integration/test_registry.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from pipeline import Context, Processor, TestPipeline, TopicSpec
from pipeline.errors import ConfigError, UndecodableRecordError
from pipeline.wire.codec import decode_value, encode_event
from pipeline.wire.protobuf_body import index_bytes, index_path, skip_index_path
from pipeline.wire.registry import SchemaRegistry
from tests.unit.proto_messages import Note, OrderProto


class Order(BaseModel):
    order_id: str
    amount: Decimal
    quantity: int
    placed_at: datetime
    tags: list[str] = []


class Remark(BaseModel):
    text: str


ORDERS = TopicSpec(
    "orders.pb", Order, key_field="order_id", format="protobuf", protobuf_message=OrderProto
)
REMARKS = TopicSpec(
    "remarks.pb", Remark, key_field="text", format="protobuf", protobuf_message=Note
)
CONFLUENT = {"use.deprecated.format": False}


def order(**changes: object) -> Order:
    fields: dict[str, object] = {
        "order_id": "o1",
        "amount": Decimal("12.30"),
        "quantity": 3,
        "placed_at": datetime(2026, 12, 6, 10, 0, tzinfo=UTC),
        "tags": ["gift"],
    }
    return Order.model_validate(fields | changes)


def context(topic: str) -> SerializationContext:
    return SerializationContext(topic, MessageField.VALUE)


def test_the_message_index_says_where_the_message_is_declared() -> None:
    assert index_path(Note.DESCRIPTOR) == [0] and index_bytes([0]) == b"\x00"
    assert index_path(OrderProto.DESCRIPTOR) == [1] and index_bytes([1]) == b"\x02\x02"
    assert skip_index_path(b"\x00\x02\x02rest", 1) == 3
    assert skip_index_path(b"\x00", 0) == 1


def test_an_event_survives_protobuf_with_the_framing(registry: SchemaRegistry) -> None:
    encoded = encode_event(ORDERS, order())
    assert encoded.value is not None and encoded.value[0] == 0 and encoded.value[5:7] == b"\x02\x02"
    assert decode_value(ORDERS, encoded.value) == order()
    assert registry.client.get_latest_version("orders.pb-value").schema.schema_type == "PROTOBUF"


@given(
    amount=st.decimals(allow_nan=False, allow_infinity=False, places=2),
    quantity=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    tags=st.lists(st.text(), max_size=3),
)
def test_every_order_survives_protobuf(amount: Decimal, quantity: int, tags: list[str]) -> None:
    from confluent_kafka.schema_registry._sync.mock_schema_registry_client import (
        MockSchemaRegistryClient,
    )

    from pipeline.wire.registry import use_registry

    previous = use_registry(SchemaRegistry(MockSchemaRegistryClient({"url": "mock://p"}), "m"))
    try:
        event = order(amount=amount, quantity=quantity, tags=tags)
        assert decode_value(ORDERS, encode_event(ORDERS, event).value) == event
    finally:
        use_registry(previous)


def test_confluents_protobuf_serde_reads_ours_and_writes_what_we_read(
    registry: SchemaRegistry,
) -> None:
    ours = encode_event(ORDERS, order())
    theirs = ProtobufDeserializer(OrderProto, CONFLUENT)(ours.value, context(ORDERS.name))
    assert theirs.order_id == "o1" and theirs.amount == "12.30" and theirs.quantity == 3

    serializer = ProtobufSerializer(OrderProto, registry.client, CONFLUENT)
    message = OrderProto(
        order_id="o2", amount="1.05", quantity=7, placed_at="2026-12-06T10:00:00Z", tags=["x"]
    )
    written = serializer(message, context(ORDERS.name))
    assert decode_value(ORDERS, written) == order(
        order_id="o2", amount=Decimal("1.05"), quantity=7, tags=["x"]
    )
    note = ProtobufSerializer(Note, registry.client, CONFLUENT)(
        Note(text="hi"), context(REMARKS.name)
    )
    assert decode_value(REMARKS, note) == Remark(text="hi")


def test_bytes_that_are_not_the_message_name_the_message_and_the_schema_id(
    registry: SchemaRegistry,
) -> None:
    good = encode_event(ORDERS, order())
    assert good.value is not None
    with pytest.raises(UndecodableRecordError, match=r"not a tests.orders.OrderProto of schema id"):
        decode_value(ORDERS, good.value[:7] + b"\xff\xff\xff")


def test_a_protobuf_topic_names_its_message_class() -> None:
    with pytest.raises(ConfigError, match="names its generated message class"):
        TopicSpec("t", Order, key_field="order_id", format="protobuf")


async def ship(event: Order, ctx: Context) -> Remark:
    return Remark(text=f"{event.order_id}:{event.quantity}")


async def test_a_processor_reads_and_writes_protobuf(registry: SchemaRegistry) -> None:
    async with TestPipeline(Processor("ship", ORDERS, ship, outputs=(REMARKS,))) as pipeline:
        await pipeline.publish(ORDERS, [order(), order(order_id="o2", quantity=5)])
        await pipeline.publish_raw(ORDERS, b"\x00\x00\x00\x00\x01\x02\x02\xff", key=b"o3")
        await pipeline.processed()
        assert sorted(r.text for r in pipeline.outputs(REMARKS)) == ["o1:3", "o2:5"]
        [dead] = pipeline.dead_letters()
        assert dead.error_type == "UndecodableRecordError"
