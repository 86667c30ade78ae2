"""Schema changes a topic's readers survive, and field by field why the others break them."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from pipeline.wire.schema_compat import CompatibilityMode, Difference, check


class Line(BaseModel):
    sku: str
    quantity: int = Field(ge=1, le=10_000)


class OrderV1(BaseModel):
    model_config = ConfigDict(extra="ignore")
    order_id: str
    amount: float
    currency: Literal["EUR", "USD"]
    lines: list[Line] = Field(default_factory=list)
    note: str | None = None


def schema(model: type[BaseModel]) -> dict[str, object]:
    return model.model_json_schema()


def problems(new: type[BaseModel], mode: CompatibilityMode = "backward") -> list[Difference]:
    return check(schema(OrderV1), schema(new), mode)


def test_an_unchanged_schema_passes_every_mode() -> None:
    for mode in ("backward", "forward", "full", "none"):
        assert problems(OrderV1, mode) == []  # type: ignore[arg-type]


def test_adding_an_optional_field_passes_both_ways() -> None:
    class OrderV2(OrderV1):
        channel: str = "web"

    assert problems(OrderV2, "full") == []


def test_adding_a_required_field_breaks_new_readers_of_old_events() -> None:
    class OrderV2(OrderV1):
        channel: str

    found = problems(OrderV2)
    assert [d.path for d in found] == ["channel"]
    assert "absent from events" in found[0].problem
    assert "default" in found[0].advice
    assert problems(OrderV2, "forward") == []  # old readers ignore it


def test_removing_a_required_field_breaks_old_readers_only() -> None:
    class OrderV2(BaseModel):
        order_id: str
        currency: Literal["EUR", "USD"]
        lines: list[Line] = Field(default_factory=list)
        note: str | None = None

    assert problems(OrderV2, "backward") == []
    found = problems(OrderV2, "forward")
    assert [d.path for d in found] == ["amount"]
    assert found[0].direction == "old consumers reading new events"


def test_renaming_a_required_field_is_named_as_a_rename() -> None:
    class OrderV2(BaseModel):
        order_id: str
        total: float
        currency: Literal["EUR", "USD"]
        lines: list[Line] = Field(default_factory=list)
        note: str | None = None

    found = problems(OrderV2, "full")
    assert {d.path for d in found} == {"total", "amount"}
    total = next(d for d in found if d.path == "total")
    assert "renamed from 'amount'" in total.problem
    assert "alias" in total.advice


@pytest.mark.parametrize(
    ("field", "annotation", "default", "expected"),
    [
        ("amount", int, ..., "amount: is number in events"),
        ("currency", Literal["EUR"], ..., "currency: may be 'USD' in events"),
        ("note", str, "", "note: may be null in events"),
        ("order_id", str, Field(max_length=8), "order_id: maxLength is 8"),
    ],
    ids=["float-to-int", "enum-value-removed", "optional-made-required-type", "max-length"],
)
def test_narrowing_a_type_is_refused_with_its_field(
    field: str, annotation: object, default: object, expected: str
) -> None:
    namespace = {"__annotations__": {field: annotation}, field: default}
    narrowed = type("OrderV2", (OrderV1,), namespace)
    found = problems(narrowed)
    assert found, f"narrowing {field} passed"
    assert any(d.line().startswith(expected) for d in found), [d.line() for d in found]


def test_a_nested_model_s_field_is_named_by_its_path() -> None:
    class StrictLine(BaseModel):
        sku: str
        quantity: int = Field(ge=1, le=100)

    class OrderV2(OrderV1):
        lines: list[StrictLine] = Field(default_factory=list)

    found = problems(OrderV2)
    assert [d.path for d in found] == ["lines[].quantity"]
    assert "maximum is 100" in found[0].problem


def test_a_reader_that_forbids_unknown_fields_breaks_on_an_added_one() -> None:
    class StrictV1(BaseModel):
        model_config = ConfigDict(extra="forbid")
        order_id: str

    class LooseV2(BaseModel):
        order_id: str
        channel: str = "web"

    found = check(schema(StrictV1), schema(LooseV2), "forward")
    assert [d.path for d in found] == ["channel"]
    assert "extra='ignore'" in found[0].advice


def test_mode_none_checks_nothing() -> None:
    class Unrelated(BaseModel):
        something_else: bytes

    assert problems(Unrelated, "none") == []
    assert problems(Unrelated, "full")
