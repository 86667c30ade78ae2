"""orders.enriched → PostgreSQL: per-customer totals and per-minute revenue by country.

One statement per batch, one transaction: the batch's rows go into
order_facts keyed by event id, and only the rows inserted for the first
time feed the aggregates. A batch delivered twice (after a crash or a
rebalance) therefore leaves the same totals. Aggregate rows are touched in
key order, so concurrent batches from other partitions do not deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from pipeline import BreakerPolicy, Context, LoaderServices, Processor, Sink, ToSink
from topics import ORDERS_ENRICHED
from topics.fx import to_eur
from topics.models import EnrichedOrder


class OrderFact(NamedTuple):
    event_id: str
    order_id: str
    customer_id: str
    country: str
    minute: datetime
    amount_eur: Decimal


UPSERT_BATCH = """
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[],
                         $5::timestamptz[], $6::numeric[])
        AS t(event_id, order_id, customer_id, country, minute, amount_eur)
), fresh AS (
    INSERT INTO order_facts (event_id, order_id, customer_id, country, minute, amount_eur)
    SELECT * FROM input
    ON CONFLICT (event_id) DO NOTHING
    RETURNING customer_id, country, minute, amount_eur
), per_customer AS (
    INSERT INTO customer_totals AS t (customer_id, orders, revenue_eur, last_order_at)
    SELECT customer_id, count(*), sum(amount_eur), max(minute)
    FROM fresh GROUP BY customer_id ORDER BY customer_id
    ON CONFLICT (customer_id) DO UPDATE SET
        orders = t.orders + excluded.orders,
        revenue_eur = t.revenue_eur + excluded.revenue_eur,
        last_order_at = greatest(t.last_order_at, excluded.last_order_at)
)
INSERT INTO revenue_by_minute AS r (minute, country, orders, revenue_eur)
SELECT minute, country, count(*), sum(amount_eur)
FROM fresh GROUP BY minute, country ORDER BY minute, country
ON CONFLICT (minute, country) DO UPDATE SET
    orders = r.orders + excluded.orders,
    revenue_eur = r.revenue_eur + excluded.revenue_eur
"""


REPORT_QUERIES: dict[str, tuple[str, tuple[Any, ...], str]] = {
    # name: (query, arguments, the index it must use)
    "customer by id": (
        "SELECT name, segment FROM customers WHERE customer_id = $1",
        ("cust-0000001",),
        "customers_pkey",
    ),
    "top customers": (
        "SELECT customer_id, orders, revenue_eur FROM customer_totals "
        "ORDER BY revenue_eur DESC LIMIT 10",
        (),
        "customer_totals_by_revenue",
    ),
    "a customer's latest orders": (
        "SELECT order_id, minute, amount_eur FROM order_facts WHERE customer_id = $1 "
        "ORDER BY minute DESC LIMIT 20",
        ("cust-0000001",),
        "order_facts_by_customer",
    ),
    "a country's revenue over an hour": (
        "SELECT minute, orders, revenue_eur FROM revenue_by_minute "
        "WHERE country = $1 AND minute >= $2 AND minute < $2 + interval '1 hour' ORDER BY minute",
        ("DE", datetime(2025, 1, 3, tzinfo=UTC)),
        "revenue_by_minute_by_country",
    ),
}
"""What the demo and operators ask of these tables; tests check each plan uses its index."""


def columns(facts: Sequence[OrderFact]) -> list[list[Any]]:
    return [list(column) for column in zip(*facts, strict=True)] if facts else [[]] * 6


async def write_facts(facts: Sequence[OrderFact], services: LoaderServices) -> None:
    async with services.db.connection() as connection:
        await connection.execute(UPSERT_BATCH, *columns(facts))


def fact_of(event: EnrichedOrder, event_id: str) -> OrderFact:
    amount_eur = event.amount_eur
    if amount_eur is None:  # written before amount_eur existed
        amount_eur = to_eur(event.amount, event.currency)
    return OrderFact(
        event_id=event_id,
        order_id=event.order_id,
        customer_id=event.customer_id,
        country=event.country,
        minute=event.placed_at.replace(second=0, microsecond=0),
        amount_eur=amount_eur,
    )


async def record(event: EnrichedOrder, ctx: Context) -> ToSink:
    return ToSink(fact_of(event, ctx.event_id))


ORDER_STATS = Processor(
    name="order_stats",
    source=ORDERS_ENRICHED,
    handler=record,
    sink=Sink("postgres", write_facts),
    database=True,
    dependencies={"postgres": BreakerPolicy(slow_call_s=2.0)},
    batch_records=1000,
)
