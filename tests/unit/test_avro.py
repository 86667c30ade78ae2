"""Avro topics through a schema registry: the mapping, Confluent's own serializers, bad input.

A mock registry (confluent-kafka's MockSchemaRegistryClient) stands in here;
tests/integration/test_registry.py runs the same ground against a real one.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any
from uuid import UUID

import fastavro
import pytest
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry._sync.mock_schema_registry_client import (
    MockSchemaRegistryClient,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from pipeline import Context, Processor, TestPipeline, TopicSpec
from pipeline.errors import ConfigError, UndecodableRecordError
from pipeline.metric_names import DEPENDENCY_FAILURES
from pipeline.resilience.breaker import DependencyError
from pipeline.wire.avro_schema import avro_schema
from pipeline.wire.codec import decode_value, encode_event
from pipeline.wire.registry import SchemaRegistry, schema_text, subject_for, use_registry


class Tier(Enum):
    GOLD = "gold"
    SILVER = "silver"


class Address(BaseModel):
    city: str
    postcode: str | None = None


class Account(BaseModel):
    account_id: str
    balance: Decimal = Field(max_digits=12, decimal_places=2)
    opened_at: datetime
    born: date
    token: UUID
    tier: Tier
    home: Address
    previous: list[Address] = []
    tags: dict[str, int] = {}
    note: str | None = None
    score: float = 0.0
    active: bool = True


ACCOUNTS = TopicSpec("accounts", Account, key_field="account_id", format="avro", partitions=2)


class Receipt(BaseModel):
    account_id: str
    balance: Decimal


RECEIPTS = TopicSpec("receipts", Receipt, key_field="account_id", format="avro", partitions=2)


def mock_registry() -> SchemaRegistry:
    return SchemaRegistry(MockSchemaRegistryClient({"url": "mock://registry"}), "mock://registry")


def account(**changes: Any) -> Account:
    fields: dict[str, Any] = {
        "account_id": "a1",
        "balance": Decimal("10.50"),
        "opened_at": datetime(2026, 12, 6, 10, 0, 0, 123456, tzinfo=UTC),
        "born": date(1990, 1, 2),
        "token": UUID("12345678-1234-5678-1234-567812345678"),
        "tier": Tier.GOLD,
        "home": Address(city="Lyon"),
        "previous": [Address(city="Oslo", postcode="0150")],
        "tags": {"a": 1},
    }
    return Account(**(fields | changes))


def test_the_derived_schema_names_every_type_as_documented() -> None:
    schema = avro_schema(Account)
    types = {field["name"]: field["type"] for field in schema["fields"]}
    assert types["balance"] == {
        "type": "bytes",
        "logicalType": "decimal",
        "precision": 12,
        "scale": 2,
    }
    assert types["opened_at"] == {"type": "long", "logicalType": "timestamp-micros"}
    assert types["born"] == {"type": "int", "logicalType": "date"}
    assert types["token"] == {"type": "string", "logicalType": "uuid"}
    assert types["tier"] == {"type": "enum", "name": "Tier", "symbols": ["gold", "silver"]}
    assert types["home"]["type"] == "record"
    assert types["previous"] == {"type": "array", "items": "Address"}, "defined once, then named"
    assert types["tags"] == {"type": "map", "values": "long"}
    assert types["note"] == ["null", "string"]
    assert {f["name"]: f.get("default") for f in schema["fields"]}["note"] is None
    fastavro.parse_schema(schema)  # Avro's own rules accept it


def test_a_type_with_no_avro_mapping_is_refused_by_field() -> None:
    class Odd(BaseModel):
        key: str
        pair: tuple[int, str]

    with pytest.raises(ConfigError, match=r"field Odd.pair has no Avro mapping"):
        TopicSpec("odd", Odd, key_field="key", format="avro")


def test_an_event_survives_avro_both_ways_with_the_framing(registry: SchemaRegistry) -> None:
    event = account()
    encoded = encode_event(ACCOUNTS, event)
    assert encoded.value is not None and encoded.value[0] == 0
    schema_id = int.from_bytes(encoded.value[1:5], "big")
    assert registry.client.get_latest_version("accounts-value").schema_id == schema_id
    assert decode_value(ACCOUNTS, encoded.value) == event


@settings(max_examples=60, deadline=None)  # timing is not the point; a loaded CI machine is slow
@given(
    balance=st.decimals(min_value=-(10**9), max_value=10**9, places=2),
    opened_at=st.datetimes(timezones=st.just(UTC)),
    note=st.none() | st.text(),
    tier=st.sampled_from(Tier),
)
def test_every_account_survives_avro(
    balance: Decimal, opened_at: datetime, note: str | None, tier: Tier
) -> None:
    previous = use_registry(mock_registry())
    try:
        event = account(balance=balance, opened_at=opened_at, note=note, tier=tier)
        encoded = encode_event(ACCOUNTS, event)
        assert decode_value(ACCOUNTS, encoded.value) == event
    finally:
        use_registry(previous)


def context() -> SerializationContext:
    return SerializationContext("accounts", MessageField.VALUE)


def test_confluents_serializer_writes_what_we_read_and_reads_what_we_write(
    registry: SchemaRegistry,
) -> None:
    ours = encode_event(ACCOUNTS, account())
    theirs = AvroDeserializer(registry.client)(ours.value, context())
    assert theirs["balance"] == Decimal("10.50") and theirs["tier"] == "gold"
    assert theirs["home"] == {"city": "Lyon", "postcode": None}

    serializer = AvroSerializer(registry.client, schema_text(ACCOUNTS))
    written = serializer({**theirs, "account_id": "a2"}, context())
    assert decode_value(ACCOUNTS, written) == account(account_id="a2")


def test_an_older_writers_record_is_resolved_into_the_current_model(
    registry: SchemaRegistry,
) -> None:
    """A field added with a default: records written before it are still read (backward)."""

    class ReceiptV1(BaseModel):
        account_id: str
        balance: Decimal

    class ReceiptV2(BaseModel):
        account_id: str
        balance: Decimal
        currency: str = "EUR"

    old_topic = TopicSpec(
        "receipts.v", ReceiptV1, key_field="account_id", format="avro", event_type="Receipt"
    )
    new_topic = TopicSpec(
        "receipts.v", ReceiptV2, key_field="account_id", format="avro", event_type="Receipt"
    )
    old = encode_event(old_topic, ReceiptV1(account_id="a", balance=Decimal("1.25")))
    registry.writer(new_topic)  # the new version registers next to the old one
    assert decode_value(new_topic, old.value) == ReceiptV2(account_id="a", balance=Decimal("1.25"))


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\x01\x00\x00\x00\x01abc", "not in the registry's wire format (starts with 0x01"),
        (b"\x00\x00\x00", "not in the registry's wire format"),
        (b'{"account_id": "a1"}', "not in the registry's wire format (starts with 0x7b"),
        (b"\x00\x00\x00\x03\xe7\x02", "schema id 999 is not in the registry at mock://registry"),
        (None, "record has no value"),
    ],
)
def test_a_value_that_is_not_framed_avro_says_why(
    registry: SchemaRegistry, value: bytes | None, reason: str
) -> None:
    with pytest.raises(UndecodableRecordError, match=reason.replace("(", r"\(")):
        decode_value(ACCOUNTS, value, partition=1, offset=7)


def test_a_body_that_does_not_match_its_schema_names_the_schema_id(
    registry: SchemaRegistry,
) -> None:
    good = encode_event(ACCOUNTS, account())
    assert good.value is not None
    with pytest.raises(UndecodableRecordError, match=r"value does not match schema id \d+"):
        decode_value(ACCOUNTS, good.value[:12])


def test_a_record_of_another_schema_fails_validation_by_field(registry: SchemaRegistry) -> None:
    class Other(BaseModel):
        account_id: int

    other = TopicSpec("accounts", Other, key_field="account_id", format="avro")
    schema_id = registry.client.register_schema("elsewhere", Schema(schema_text(other), "AVRO"))
    value = b"\x00" + schema_id.to_bytes(4, "big") + b"\x02"  # account_id = 1
    with pytest.raises(UndecodableRecordError, match="does not match schema id"):
        decode_value(ACCOUNTS, value)


async def settle(event: Account, ctx: Context) -> Receipt:
    return Receipt(account_id=event.account_id, balance=event.balance)


SETTLE = Processor("settle", ACCOUNTS, settle, outputs=(RECEIPTS,))


async def test_a_processor_reads_and_writes_avro_and_dead_letters_what_is_not(
    registry: SchemaRegistry,
) -> None:
    async with TestPipeline(SETTLE) as pipeline:
        await pipeline.publish(ACCOUNTS, [account(), account(account_id="a2")])
        await pipeline.publish_raw(ACCOUNTS, b"\x00\x00\x00\x03\xe7\x02", key=b"a3")
        await pipeline.processed()
        assert sorted(r.account_id for r in pipeline.outputs(RECEIPTS)) == ["a1", "a2"]
        [dead] = pipeline.dead_letters()
        assert dead.error_type == "UndecodableRecordError"
        assert "schema id 999" in dead.error_message
        assert dead.value == b"\x00\x00\x00\x03\xe7\x02"


class FailingRegistry:
    """A registry client whose lookups fail with `error` until `fixed` is set."""

    def __init__(self, inner: MockSchemaRegistryClient, error: Exception) -> None:
        self.inner = inner
        self.error = error
        self.fixed = False
        self.calls = 0

    def get_schema(self, schema_id: int) -> Schema:
        self.calls += 1
        if not self.fixed:
            raise self.error
        return self.inner.get_schema(schema_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize(
    "error",
    [SchemaRegistryError(500, 50001, "internal error"), ConnectionRefusedError("refused")],
    ids=["answers-500", "unreachable"],
)
async def test_a_registry_that_fails_holds_the_record_and_loses_nothing(error: Exception) -> None:
    inner = MockSchemaRegistryClient({"url": "mock://registry"})
    written_by = SchemaRegistry(inner, "mock://registry")
    previous = use_registry(written_by)
    try:
        value = encode_event(ACCOUNTS, account()).value
    finally:
        use_registry(previous)
    failing = FailingRegistry(inner, error)
    reader = SchemaRegistry(failing, "mock://registry")
    previous = use_registry(reader)
    try:
        async with TestPipeline(SETTLE) as pipeline:
            reader.writer(RECEIPTS)  # the output's schema is known; only reading fails
            await pipeline.publish_raw(ACCOUNTS, value, key=b"a1")
            deadline = asyncio.get_running_loop().time() + 10
            while pipeline.metrics.total(DEPENDENCY_FAILURES) < 2:
                assert asyncio.get_running_loop().time() < deadline, "no dependency failure"
                await asyncio.sleep(0.02)
            assert pipeline.dead_letters() == [] and pipeline.outputs(RECEIPTS) == []
            failing.fixed = True
            await pipeline.processed(timeout_s=30)
            assert [r.account_id for r in pipeline.outputs(RECEIPTS)] == ["a1"]
            assert pipeline.dead_letters() == []
    finally:
        use_registry(previous)


def test_a_registry_that_is_down_is_a_dependency_error_not_a_bad_record() -> None:
    reader = SchemaRegistry(
        FailingRegistry(MockSchemaRegistryClient({"url": "mock://r"}), OSError("down")), "mock://r"
    )
    with pytest.raises(DependencyError, match="schema-registry"):
        asyncio.run(reader.fetch(5))
    assert not reader.knows(5), "a failed lookup is not remembered as an unknown id"


def test_without_a_registry_an_avro_topic_says_which_setting_to_set() -> None:
    previous = use_registry(None)
    try:
        with pytest.raises(ConfigError, match="PIPELINE_SCHEMA_REGISTRY__URL"):
            encode_event(ACCOUNTS, account())
    finally:
        use_registry(previous)


@pytest.mark.parametrize(
    ("strategy", "subject"),
    [("topic", "accounts-value"), ("record", "Ledger"), ("topic_record", "accounts-Ledger")],
)
def test_each_subject_strategy_names_the_subject_as_confluents_serializers_do(
    strategy: str, subject: str
) -> None:
    spec = TopicSpec(
        "accounts", Account, key_field="account_id", format="avro", event_type="Ledger"
    )
    assert subject_for(spec, strategy) == subject
    client = MockSchemaRegistryClient({"url": "mock://s"})
    previous = use_registry(SchemaRegistry(client, "mock://s", subject_strategy=strategy))
    try:
        encode_event(spec, account())
    finally:
        use_registry(previous)
    assert client.get_subjects() == [subject]


def test_registry_settings_reach_the_client_as_basic_auth_and_a_ca() -> None:
    from pydantic import SecretStr

    from pipeline.settings import RegistrySettings
    from pipeline.wire.registry import client_config

    config = client_config(
        RegistrySettings(
            url="https://registry.example:8081",
            username="app",
            password=SecretStr("s3cret"),
            ca_location=Path("/etc/ssl/ca.pem"),
        )
    )
    assert config == {
        "url": "https://registry.example:8081",
        "basic.auth.user.info": "app:s3cret",
        "ssl.ca.location": "/etc/ssl/ca.pem",
    }
    assert client_config(RegistrySettings(url="http://r")) == {"url": "http://r"}


async def test_topics_apply_says_which_registry_does_not_answer() -> None:
    """Nothing listens on the port: a clear error naming the URL, not a traceback."""
    from pipeline.dev.processes import free_ports
    from pipeline.ops.registry_subjects import RegistryUnavailableError, check_subjects
    from pipeline.settings import RegistrySettings

    url = f"http://127.0.0.1:{free_ports(1)[0]}"
    down = SchemaRegistry.from_settings(RegistrySettings(url=url))
    with pytest.raises(RegistryUnavailableError, match=f"the schema registry at {url} failed"):
        await check_subjects(down, [ACCOUNTS])
