"""A topic's format: JSON and raw bodies, read from producers that are not ours.

The first case is the one a new user met: another team's service writes
plain JSON with no headers, and every record went to the DLQ as "not
msgpack". Then the edges of each format: bytes that are not UTF-8, JSON
that is not an object, nulls, decimals that must not pass through a float,
old versions upcast, and a raw topic's bytes untouched both ways.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from pipeline import Catalogue, Context, PermanentError, Processor, TestPipeline, TopicSpec
from pipeline.errors import ConfigError, EventValidationError, UndecodableRecordError
from pipeline.wire.codec import TopicEncoder, decode_value, encode_event
from pipeline.wire.formats import RawRecord
from pipeline.wire.json_body import needs_exact_decimals


class Payment(BaseModel):
    payment_id: str
    account_id: str
    cents: int


class Settled(BaseModel):
    payment_id: str
    euros: str


PAYMENTS = TopicSpec("payments", Payment, key_field="account_id", partitions=2, format="json")
SETTLED = TopicSpec("settled", Settled, key_field="payment_id", partitions=2, format="json")
CATALOGUE = Catalogue([PAYMENTS, SETTLED])


async def settle(payment: Payment, ctx: Context) -> Settled:
    if payment.cents < 0:
        raise PermanentError("a payment is never negative")
    return Settled(payment_id=payment.payment_id, euros=f"{payment.cents / 100:.2f}")


SETTLE = Processor("settle", PAYMENTS, settle, outputs=(SETTLED,))


async def test_plain_json_without_headers_from_another_team_is_processed() -> None:
    async with TestPipeline(SETTLE) as pipeline:
        for n in range(5):
            body = {"payment_id": str(n), "account_id": "a1", "cents": 100 * n}
            await pipeline.publish_raw(PAYMENTS, json.dumps(body).encode(), key=b"a1")
        await pipeline.processed()
        assert pipeline.dead_letters() == []
        assert sorted(s.payment_id for s in pipeline.outputs(SETTLED)) == ["0", "1", "2", "3", "4"]
        # The outputs are JSON another team's consumer reads with any JSON library.
        bodies = [json.loads(r.value or b"") for r in pipeline.records(SETTLED)]
        assert {"payment_id": "1", "euros": "1.00"} in bodies


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\xff\xfe not utf-8", "value is not JSON"),
        (b'{"payment_id": "1", ', "value is not JSON"),
        (b"[1, 2, 3]", "value is JSON an array, expected an object of fields"),
        (b'"a string"', "value is JSON a string, expected an object of fields"),
        (b"42", "value is JSON a number, expected an object of fields"),
        (b"null", "value is JSON null, expected an object of fields"),
        (None, "record has no value"),
    ],
)
async def test_json_that_is_not_an_event_is_dead_lettered_with_its_reason(
    value: bytes | None, reason: str
) -> None:
    async with TestPipeline(SETTLE) as pipeline:
        await pipeline.publish_raw(PAYMENTS, value, key=b"a1")
        await pipeline.processed()
        [dead] = pipeline.dead_letters()
        assert dead.error_type == "UndecodableRecordError"
        assert reason in dead.error_message
        assert "payments" in dead.error_message and "offset 0" in dead.error_message
        assert dead.value == value, "the DLQ keeps the bytes as they came"


async def test_a_json_body_with_a_bad_field_names_the_field() -> None:
    async with TestPipeline(SETTLE) as pipeline:
        await pipeline.publish_raw(
            PAYMENTS, b'{"payment_id": "1", "account_id": "a1", "cents": "lots"}', key=b"a1"
        )
        await pipeline.processed()
        [dead] = pipeline.dead_letters()
        assert dead.error_type == "EventValidationError"
        assert "cents" in dead.error_message


class Colour(Enum):
    RED = "red"
    BLUE = "blue"


class Line(BaseModel):
    sku: str
    price: Decimal


class Awkward(BaseModel):
    """The types a mapping must get right: decimals, datetimes, enums, optionals, nesting."""

    order_id: str
    total: Decimal
    placed_at: datetime
    colour: Colour
    note: str | None = None
    lines: list[Line] = []


AWKWARD = TopicSpec("awkward", Awkward, key_field="order_id", format="json")


def test_a_decimal_written_as_a_json_number_keeps_every_digit() -> None:
    value = (
        b'{"order_id": "o1", "total": 12345678901234567890.123456789, '
        b'"placed_at": "2026-12-06T10:00:00Z", "colour": "red", '
        b'"lines": [{"sku": "s", "price": 0.1}]}'
    )
    event = decode_value(AWKWARD, value)
    assert isinstance(event, Awkward)
    assert event.total == Decimal("12345678901234567890.123456789")
    assert event.lines[0].price == Decimal("0.1")
    assert needs_exact_decimals(Awkward) and not needs_exact_decimals(Payment)


@given(
    total=st.decimals(allow_nan=False, allow_infinity=False, places=4),
    placed_at=st.datetimes(timezones=st.just(UTC)),
    colour=st.sampled_from(Colour),
    note=st.none() | st.text(),
    prices=st.lists(st.decimals(allow_nan=False, allow_infinity=False, places=2), max_size=3),
)
def test_every_awkward_event_survives_json_both_ways(
    total: Decimal,
    placed_at: datetime,
    colour: Colour,
    note: str | None,
    prices: list[Decimal],
) -> None:
    event = Awkward(
        order_id="o1",
        total=total,
        placed_at=placed_at,
        colour=colour,
        note=note,
        lines=[Line(sku=f"s{i}", price=p) for i, p in enumerate(prices)],
    )
    encoded = encode_event(AWKWARD, event)
    assert encoded.value is not None
    json.loads(encoded.value)  # any JSON library reads it
    assert decode_value(AWKWARD, encoded.value) == event


def test_an_old_json_body_is_upcast_like_a_msgpack_one() -> None:
    def cents_from_amount(fields: dict[str, object]) -> dict[str, object]:
        amount = fields.pop("amount")
        assert isinstance(amount, Decimal), "an upcaster sees exact decimals, not floats"
        return {**fields, "cents": int(amount * 100)}

    spec = TopicSpec(
        "payments.v2",
        Payment,
        key_field="account_id",
        format="json",
        schema_version=2,
        upcasters={1: cents_from_amount},
    )
    old = b'{"payment_id": "p", "account_id": "a", "amount": 12.34}'
    assert decode_value(spec, old, version=1) == Payment(payment_id="p", account_id="a", cents=1234)


def test_a_msgpack_topic_still_says_not_msgpack() -> None:
    msgpack_payments = TopicSpec("mp", Payment, key_field="account_id")
    with pytest.raises(UndecodableRecordError, match="value is not msgpack"):
        decode_value(msgpack_payments, b'{"payment_id": "0"}')
    with pytest.raises(EventValidationError):
        decode_value(PAYMENTS, b'{"payment_id": "0"}')


RAW = TopicSpec("legacy.feed", RawRecord, key_field="key", format="raw", partitions=3)
RAW_COPY = TopicSpec("legacy.copy", RawRecord, key_field="key", format="raw", partitions=3)


async def reverse(record: RawRecord, ctx: Context) -> RawRecord:
    return RawRecord(key=record.key, value=None if record.value is None else record.value[::-1])


REVERSE = Processor("reverse", RAW, reverse, outputs=(RAW_COPY,))


@given(
    key=st.none() | st.binary(max_size=20),
    value=st.none() | st.binary(max_size=200),
)
def test_a_raw_record_is_the_bytes_it_was_given(key: bytes | None, value: bytes | None) -> None:
    encoded = TopicEncoder(RAW).encode(RawRecord(key=key, value=value), "id-1")
    assert (encoded.key, encoded.value) == (key, value)
    assert decode_value(RAW, encoded.value, key=encoded.key) == RawRecord(key=key, value=value)


async def test_a_raw_topic_hands_any_bytes_and_headers_to_its_handler() -> None:
    """Not UTF-8, null, another producer's event-type header: none of it is the handler's
    problem on a raw topic, and nothing is dead-lettered for its shape."""
    async with TestPipeline(REVERSE) as pipeline:
        await pipeline.publish_raw(RAW, b"\x00\xffabc", key=b"\xfe", headers=[("event-type", b"X")])
        await pipeline.publish_raw(RAW, None, key=None)
        await pipeline.publish_raw(RAW, b"", key=b"k")
        await pipeline.processed()
        assert pipeline.dead_letters() == []
        assert pipeline.outputs(RAW_COPY) == [
            RawRecord(key=b"\xfe", value=b"cba\xff\x00"),
            RawRecord(key=None, value=None),
            RawRecord(key=b"k", value=b""),
        ]


def test_a_spec_says_what_is_wrong_with_its_format() -> None:
    with pytest.raises(ConfigError, match="format 'avro2' is not one of msgpack, json, avro"):
        TopicSpec("t", Payment, key_field="account_id", format="avro2")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="a raw topic carries RawRecord"):
        TopicSpec("t", Payment, key_field="account_id", format="raw")
    with pytest.raises(ConfigError, match="RawRecord belongs on a raw topic"):
        TopicSpec("t", RawRecord, key_field="key")
