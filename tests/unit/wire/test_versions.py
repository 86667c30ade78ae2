"""Reading by schema version: old bodies upcast, newer ones read or dead-lettered, both named."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from pydantic import BaseModel, ConfigDict

from pipeline.catalogue import TopicSpec
from pipeline.errors import ConfigError, SchemaVersionError
from pipeline.processor import Context, Processor
from pipeline.testing import TestPipeline
from pipeline.wire.codec import decode_value
from pipeline.wire.versions import schema_version_of, version_in


class PriceV1(BaseModel):
    model_config = ConfigDict(extra="ignore")
    sku: str
    amount: float


class PriceV2(BaseModel):
    """v2 adds an optional field: no upcaster needed."""

    model_config = ConfigDict(extra="ignore")
    sku: str
    amount: float
    currency: str = "EUR"


class PriceV3(BaseModel):
    """v3 renames amount to total and counts cents: old bodies need upcasting."""

    model_config = ConfigDict(extra="ignore")
    sku: str
    total_cents: int
    currency: str = "EUR"


def v1_to_v2(fields: dict[str, Any]) -> dict[str, Any]:
    return {**fields, "currency": fields.get("currency", "EUR")}


def v2_to_v3(fields: dict[str, Any]) -> dict[str, Any]:
    rest = {k: v for k, v in fields.items() if k != "amount"}
    return {**rest, "total_cents": round(fields["amount"] * 100)}


# One event-type for every version: it names what the topic carries, not the class.
V1 = TopicSpec("prices", PriceV1, "sku", event_type="Price", replication_factor=1)
V2 = TopicSpec("prices", PriceV2, "sku", event_type="Price", schema_version=2, replication_factor=1)
V3 = TopicSpec(
    "prices",
    PriceV3,
    "sku",
    event_type="Price",
    schema_version=3,
    upcasters={1: v1_to_v2, 2: v2_to_v3},
    replication_factor=1,
)
SEEN = TopicSpec("prices.seen", PriceV1, "sku", replication_factor=1)


def body(**fields: object) -> bytes:
    return msgpack.packb(fields)  # type: ignore[no-any-return]


def test_a_v2_consumer_reads_a_v1_body_as_it_is() -> None:
    event = decode_value(V2, body(sku="a", amount=1.5), version=1)
    assert event == PriceV2(sku="a", amount=1.5, currency="EUR")


def test_an_upcaster_chain_brings_a_v1_body_to_v3() -> None:
    event = decode_value(V3, body(sku="a", amount=1.25), version=1)
    assert event == PriceV3(sku="a", total_cents=125, currency="EUR")
    from_v2 = decode_value(V3, body(sku="a", amount=2.0, currency="SEK"), version=2)
    assert from_v2 == PriceV3(sku="a", total_cents=200, currency="SEK")


def test_a_body_from_the_future_is_refused_naming_both_versions() -> None:
    with pytest.raises(SchemaVersionError) as refused:
        decode_value(
            V1, body(sku="a", amount=1.0, currency="SEK"), partition=2, offset=9, version=2
        )
    message = str(refused.value)
    assert "schema version 2, newer than version 1" in message
    assert "'prices' partition 2 offset 9" in message
    assert "deploy the consumer for version 2" in message


def test_a_forward_compatible_topic_reads_a_body_from_the_future() -> None:
    forward = TopicSpec("prices", PriceV1, "sku", compatibility="forward", replication_factor=1)
    event = decode_value(forward, body(sku="a", amount=1.0, currency="SEK"), version=2)
    assert event == PriceV1(sku="a", amount=1.0)


def test_an_upcaster_that_fails_or_returns_no_dict_is_a_clear_error() -> None:
    def broken(fields: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("amount")

    spec = TopicSpec("prices", PriceV2, "sku", schema_version=2, upcasters={1: broken})
    with pytest.raises(SchemaVersionError, match="upcaster from schema version 1 to 2 failed"):
        decode_value(spec, body(sku="a"), version=1)
    spec = TopicSpec("prices", PriceV2, "sku", schema_version=2, upcasters={1: lambda f: None})  # type: ignore[arg-type,return-value,dict-item]
    with pytest.raises(SchemaVersionError, match="returned NoneType, not a dict"):
        decode_value(spec, body(sku="a", amount=1.0), version=1)


@pytest.mark.parametrize("raw", [b"", b"two", b"0", b"-3", b"\xff\xfe", b"1.5"])
def test_a_schema_version_header_that_is_not_a_positive_number_is_refused(raw: bytes) -> None:
    with pytest.raises(SchemaVersionError, match="is not a positive number"):
        schema_version_of(raw, "prices", 0, 1)


def test_upcasters_must_be_for_versions_before_the_current_one() -> None:
    with pytest.raises(ConfigError, match="versions before 2"):
        TopicSpec("prices", PriceV2, "sku", schema_version=2, upcasters={2: v2_to_v3})
    with pytest.raises(ConfigError, match="compatibility"):
        TopicSpec("prices", PriceV2, "sku", compatibility="sideways")  # type: ignore[arg-type]


async def forward_price(price: PriceV1, ctx: Context) -> PriceV1:
    return price


async def test_a_v1_worker_dead_letters_a_v2_body_and_handles_the_v1_ones() -> None:
    processor = Processor("prices_v1", V1, forward_price, outputs=(SEEN,))
    async with TestPipeline(processor) as pipeline:
        await pipeline.publish(V1, [PriceV1(sku="a", amount=1.0)])
        await pipeline.publish(V2, [PriceV2(sku="b", amount=2.0, currency="SEK")])
        await pipeline.publish(V1, [PriceV1(sku="c", amount=3.0)])
        await pipeline.processed()
        outputs = pipeline.outputs(SEEN)
        dead = pipeline.dead_letters()
    assert sorted(o.sku for o in outputs) == ["a", "c"]
    assert [d.error_type for d in dead] == ["SchemaVersionError"]
    assert "schema version 2, newer than version 1" in dead[0].error_message
    assert msgpack.unpackb(dead[0].value)["sku"] == "b"  # kept byte for byte


async def test_a_v3_worker_reads_v1_v2_and_v3_bodies() -> None:
    seen = TopicSpec("prices.seen", PriceV3, "sku", replication_factor=1)

    async def forward_v3(price: PriceV3, ctx: Context) -> PriceV3:
        return price

    processor = Processor("prices_v3", V3, forward_v3, outputs=(seen,))
    async with TestPipeline(processor) as pipeline:
        await pipeline.publish(V1, [PriceV1(sku="a", amount=1.0)])
        await pipeline.publish(V2, [PriceV2(sku="b", amount=2.0, currency="SEK")])
        await pipeline.publish(V3, [PriceV3(sku="c", total_cents=300)])
        await pipeline.processed()
        outputs = {o.sku: o for o in pipeline.outputs(seen)}
        assert pipeline.dead_letters() == []
    assert outputs["a"] == PriceV3(sku="a", total_cents=100, currency="EUR")
    assert outputs["b"] == PriceV3(sku="b", total_cents=200, currency="SEK")
    assert outputs["c"] == PriceV3(sku="c", total_cents=300, currency="EUR")


def test_the_version_in_headers_is_parsed_only_when_it_is_not_the_topic_s_own() -> None:
    assert version_in(V3, [("schema-version", b"3")]) is None
    assert version_in(V3, [("event-id", b"e")]) is None
    assert version_in(V3, [("schema-version", b"2"), ("schema-version", b"1")]) == 1  # last wins
    with pytest.raises(SchemaVersionError, match="not a positive number"):
        version_in(V3, [("schema-version", b"v1")], 0, 3)
