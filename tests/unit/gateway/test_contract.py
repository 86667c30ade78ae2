"""The schema a topic's routes publish is the one they enforce (pipeline.gateway.contract)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, ValidationError, create_model

from pipeline.gateway.bodies import MSGPACK, parse_batch, parse_single
from pipeline.gateway.contract import EventContract, decimal_pattern
from pipeline.gateway.errors import GatewayError


def decimal_model(**limits: Any) -> type[BaseModel]:
    return create_model("Priced", price=(Decimal, Field(**limits)))


def pydantic_takes(model: type[BaseModel], text: str) -> bool:
    try:
        model.model_validate_json(json.dumps({"price": text}))
    except ValidationError:
        return False
    return True


LIMITS = st.fixed_dictionaries(
    {},
    optional={
        "max_digits": st.integers(1, 8),
        "decimal_places": st.integers(0, 4),
        "ge": st.just(0),
        "gt": st.just(0),
    },
).filter(lambda limits: not ("ge" in limits and "gt" in limits))
DECIMAL_TEXT = st.from_regex(r"\A-?[0-9]{0,9}(\.[0-9]{0,6})?\Z").filter(bool) | st.decimals(
    allow_nan=False, allow_infinity=False, places=4
).map(str)


@settings(max_examples=300, deadline=None)
@given(limits=LIMITS, text=DECIMAL_TEXT)
def test_a_decimal_the_pattern_admits_is_one_pydantic_takes(
    limits: dict[str, Any], text: str
) -> None:
    """The direction a generated client depends on: what the document allows is accepted."""
    model = decimal_model(**limits)
    low = limits.get("ge", limits.get("gt"))
    pattern = decimal_pattern(
        limits.get("max_digits"),
        limits.get("decimal_places"),
        signed=low is None,
        positive="gt" in limits,
    )
    if re.search(pattern, text):
        assert pydantic_takes(model, text), (pattern, text)


def test_the_pattern_says_digits_places_and_sign() -> None:
    pattern = re.compile(decimal_pattern(6, 2, signed=False, positive=True))
    for good in ("1234.56", "0.01", "0.5", "9999"):
        assert pattern.search(good), good
    for bad in ("12345.6", "1234.567", "0", "0.00", "-1", "", "1e3", "01.5", " 1", "1.", ".5"):
        assert not pattern.search(bad), bad


class Line(BaseModel):
    sku: str
    price: Decimal = Field(ge=0, max_digits=8, decimal_places=2)


class Order(BaseModel):
    amount: Decimal = Field(ge=0, max_digits=14, decimal_places=2)
    rate: Decimal | None = None
    placed_at: datetime
    count: int = 0
    lines: list[Line] = Field(default_factory=list)


ORDER = EventContract.of(Order)


def fields(problems: Any) -> dict[str, str]:
    assert isinstance(problems, list), problems
    return {problem["field"]: problem["reason"] for problem in problems}


def test_what_the_issue_found_is_refused_with_the_rule() -> None:
    found = fields(ORDER.build({"amount": "", "placed_at": 0}))
    assert "at most 14 digits, at most 2 after the point" in found["amount"]
    assert found["placed_at"].startswith('0 is not of type "string"')
    # A JSON number has no places of its own: a limited decimal is text.
    assert "amount" in fields(ORDER.build({"amount": 0.29, "placed_at": "2026-01-01T00:00:00Z"}))


def test_lax_conversions_the_document_does_not_promise_are_refused() -> None:
    good = {"amount": "12.50", "placed_at": "2026-12-07T10:00:00+01:00"}
    assert isinstance(ORDER.build(good), Order)
    for field, value in (
        ("placed_at", "2026-12-07T10:00:00"),  # no offset: not RFC 3339
        ("placed_at", "1765100000"),
        ("count", False),
        ("count", "7"),
        ("count", 2**63),  # past what msgpack, Avro and Protobuf carry
        ("rate", ""),
        ("rate", "1e5"),
    ):
        problems = fields(ORDER.build({**good, field: value}))
        assert field in problems, (field, value)


def test_nested_problems_name_the_path() -> None:
    event = {"amount": "1", "placed_at": "2026-12-07T10:00:00Z", "lines": [{"sku": "a"}]}
    assert "lines.0" in fields(ORDER.build(event))
    event["lines"] = [{"sku": "a", "price": "1.234"}]
    assert "lines.0.price" in fields(ORDER.build(event))


def test_text_json_cannot_carry_is_refused_where_it_sits() -> None:
    problems = fields(ORDER.build({"amount": "1", "placed_at": "\ud800"}))
    assert "placed_at" in problems and "lone surrogate" in problems["placed_at"]


def test_json_bodies_refuse_nan_and_infinity() -> None:
    for constant in (b"NaN", b"Infinity", b"-Infinity"):
        with pytest.raises(GatewayError) as refused:
            parse_single(b'{"rate": ' + constant + b"}", "application/json")
        assert refused.value.status == 400


def test_msgpack_timestamps_become_rfc_3339_and_binary_is_refused() -> None:
    moment = datetime(2026, 12, 7, 10, tzinfo=UTC)
    body = msgpack.packb([{"placed_at": moment, "amount": "1"}], datetime=True)
    [event] = parse_batch(body, MSGPACK[0], 10)
    assert isinstance(ORDER.build(event), Order)
    assert event["placed_at"] == "2026-12-07T10:00:00+00:00"
    for value in (b"\x00raw", float("nan")):
        with pytest.raises(GatewayError) as refused:
            parse_batch(msgpack.packb([{"note": value}]), MSGPACK[0], 10)
        assert refused.value.status == 400 and "event 0.note" in refused.value.message
