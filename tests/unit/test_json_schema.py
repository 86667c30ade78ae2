"""JSON Schema topics: framed JSON, pydantic's JSON Schema in the registry, Confluent's serde.

A mock registry here (confluent-kafka's); the same ground against a real
registry is in tests/integration/test_registry.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from pydantic import BaseModel

from pipeline import Context, Processor, TestPipeline, TopicSpec
from pipeline.errors import EventValidationError, UndecodableRecordError
from pipeline.wire.codec import decode_value, encode_event
from pipeline.wire.registry import SchemaRegistry, schema_text


class Invoice(BaseModel):
    invoice_id: str
    total: Decimal
    issued_at: datetime
    lines: list[str] = []


INVOICES = TopicSpec("invoices", Invoice, key_field="invoice_id", format="json_schema")
AVRO_INVOICES = TopicSpec("invoices", Invoice, key_field="invoice_id", format="avro")


def invoice(**changes: object) -> Invoice:
    fields: dict[str, object] = {
        "invoice_id": "i1",
        "total": Decimal("99.95"),
        "issued_at": datetime(2026, 12, 6, 9, 30, tzinfo=UTC),
        "lines": ["a", "b"],
    }
    return Invoice.model_validate(fields | changes)


def context() -> SerializationContext:
    return SerializationContext("invoices", MessageField.VALUE)


def test_an_event_is_framed_json_and_its_schema_is_registered_as_json(
    registry: SchemaRegistry,
) -> None:
    encoded = encode_event(INVOICES, invoice())
    assert encoded.value is not None and encoded.value[0] == 0
    assert json.loads(encoded.value[5:])["total"] == "99.95"
    latest = registry.client.get_latest_version("invoices-value")
    assert latest.schema.schema_type == "JSON"
    assert json.loads(latest.schema.schema_str)["properties"].keys() >= {"invoice_id", "total"}
    assert decode_value(INVOICES, encoded.value) == invoice()


def test_confluents_json_serde_reads_ours_and_writes_what_we_read(
    registry: SchemaRegistry,
) -> None:
    ours = encode_event(INVOICES, invoice())
    theirs = JSONDeserializer(None, schema_registry_client=registry.client)(ours.value, context())
    assert theirs["invoice_id"] == "i1" and theirs["total"] == "99.95"

    serializer = JSONSerializer(schema_text(INVOICES), registry.client)
    written = serializer({**theirs, "invoice_id": "i2"}, context())
    assert decode_value(INVOICES, written) == invoice(invoice_id="i2")


def test_an_id_of_another_format_is_refused_by_name(registry: SchemaRegistry) -> None:
    avro = encode_event(AVRO_INVOICES, invoice())
    assert avro.value is not None
    with pytest.raises(UndecodableRecordError, match="is a AVRO schema, but topic 'invoices' is"):
        decode_value(INVOICES, b"\x00" + avro.value[1:5] + b'{"invoice_id": "x"}')


def test_framed_json_that_breaks_the_model_names_the_field(registry: SchemaRegistry) -> None:
    good = encode_event(INVOICES, invoice())
    assert good.value is not None
    with pytest.raises(EventValidationError, match="total"):
        decode_value(
            INVOICES,
            good.value[:5] + b'{"invoice_id": "i", "total": "x", '
            b'"issued_at": "2026-01-01T00:00:00Z"}',
        )
    with pytest.raises(UndecodableRecordError, match="value is JSON an array"):
        decode_value(INVOICES, good.value[:5] + b"[1]")


async def pay(invoice: Invoice, ctx: Context) -> None:
    return None


async def test_a_processor_reads_framed_json_and_dead_letters_unframed(
    registry: SchemaRegistry,
) -> None:
    processor = Processor("pay", INVOICES, pay)
    async with TestPipeline(processor) as pipeline:
        await pipeline.publish(INVOICES, [invoice()])
        await pipeline.publish_raw(INVOICES, b'{"invoice_id": "i9"}', key=b"i9")
        await pipeline.processed()
        [dead] = pipeline.dead_letters()
        assert "not in the registry's wire format (starts with 0x7b" in dead.error_message
