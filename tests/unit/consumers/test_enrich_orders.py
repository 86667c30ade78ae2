"""consumers/enrich_orders.py in the real runtime on the in-memory broker (pipeline.testing)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from consumers.enrich_orders import ENRICH_ORDERS
from pipeline.stores.table import LoaderServices
from pipeline.testing import TestPipeline
from topics import CUSTOMERS, ORDERS, ORDERS_ENRICHED
from topics.models import Customer, Order

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def customer(customer_id: str, name: str = "Ada", segment: str = "vip") -> Customer:
    return Customer.model_validate(
        {
            "customer_id": customer_id,
            "name": name,
            "country": "DE",
            "segment": segment,
            "signed_up_at": NOW,
            "updated_at": NOW,
        }
    )


def order(order_id: str, customer_id: str, amount: str = "10.00", currency: str = "EUR") -> Order:
    return Order.model_validate(
        {
            "order_id": order_id,
            "customer_id": customer_id,
            "amount": amount,
            "currency": currency,
            "country": "DE",
            "placed_at": NOW,
        }
    )


async def nobody(customer_id: str, services: LoaderServices) -> Customer | None:
    return None


async def test_an_order_is_joined_with_its_customer_from_the_topic() -> None:
    async with TestPipeline(ENRICH_ORDERS, database=False, loaders={"customers": nobody}) as p:
        await p.publish(CUSTOMERS, customer("c-1", name="Ada Lovelace"))
        await p.publish(ORDERS, [order("o-1", "c-1", "12.50"), order("o-2", "c-1", "3.00")])
        await p.processed()
        enriched = p.outputs(ORDERS_ENRICHED)
    assert [e.order_id for e in enriched] == ["o-1", "o-2"]  # one customer: one partition, in order
    assert {e.customer_name for e in enriched} == {"Ada Lovelace"}
    assert enriched[0].customer_segment == "vip"
    assert enriched[0].amount_eur == Decimal("12.50")
    assert p.dead_letters() == []


async def test_a_customer_the_topic_lacks_comes_from_the_loader() -> None:
    async def from_database(customer_id: str, services: LoaderServices) -> Customer | None:
        return customer(customer_id, name="From PostgreSQL", segment="business")

    async with TestPipeline(
        ENRICH_ORDERS, database=False, loaders={"customers": from_database}
    ) as p:
        await p.publish(ORDERS, order("o-1", "c-9"))
        await p.processed()
        [enriched] = p.outputs(ORDERS_ENRICHED)
    assert enriched.customer_name == "From PostgreSQL"


async def test_an_order_of_an_unknown_customer_is_dead_lettered_with_the_reason() -> None:
    async with TestPipeline(ENRICH_ORDERS, database=False, loaders={"customers": nobody}) as p:
        await p.publish(ORDERS, order("o-404", "c-unknown"))
        await p.processed()
        assert p.outputs(ORDERS_ENRICHED) == []
        [dead] = p.dead_letters()
    assert dead.error_type == "PermanentError"
    assert "o-404" in dead.error_message and "c-unknown" in dead.error_message
    assert dead.attempts == 1  # permanent: no retries


async def test_bytes_that_are_not_an_order_are_kept_and_the_next_order_goes_through() -> None:
    async with TestPipeline(ENRICH_ORDERS, database=False, loaders={"customers": nobody}) as p:
        await p.publish(CUSTOMERS, customer("c-1"))
        partition = (await p.publish(ORDERS, order("o-1", "c-1")))[0].partition
        await p.publish_raw(ORDERS, b"\xff\xfe not msgpack", key=b"c-1", partition=partition)
        await p.publish(ORDERS, order("o-2", "c-1"))
        await p.processed()
        enriched = p.outputs(ORDERS_ENRICHED)
        [dead] = p.dead_letters()
    assert [e.order_id for e in enriched] == ["o-1", "o-2"]
    assert dead.value == b"\xff\xfe not msgpack"  # byte for byte
    assert dead.source_partition == partition and dead.source_offset == 1
    assert dead.error_type == "UndecodableRecordError"
