"""Handlers are typed by their source's event model: checked by mypy (`make lint`), run by pytest.

mypy checks this module (pyproject's [tool.mypy] modules) with
warn_unused_ignores: the `type: ignore` below fails the lint the day a
handler for the wrong model stops being a type error.
"""

from __future__ import annotations

from typing import assert_type

from consumers.enrich_orders import CUSTOMER_TABLE, ENRICH_ORDERS, enrich
from pipeline.processor import Context, Processor
from pipeline.stores.table import Table, TableView
from topics import ORDERS
from topics.models import Customer, Order


async def handles_customers(event: Customer, ctx: Context) -> None:
    return None


def test_a_processor_is_typed_by_its_source() -> None:
    assert_type(ENRICH_ORDERS, Processor[Order])
    assert ENRICH_ORDERS.source.event_model is Order
    assert ENRICH_ORDERS.handler is enrich


def test_a_handler_for_another_model_is_a_type_error() -> None:
    wrong = Processor("wrong", ORDERS, handles_customers)  # type: ignore[arg-type]
    assert wrong.source is ORDERS  # constructed at run time all the same: only mypy objects


def test_a_table_lookup_is_typed_by_the_table() -> None:
    assert_type(CUSTOMER_TABLE, Table[Customer])

    def lookup(ctx: Context) -> TableView[Customer]:
        return ctx.table(CUSTOMER_TABLE)

    assert lookup.__annotations__["return"] == "TableView[Customer]"
