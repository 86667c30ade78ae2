"""orders.enriched → revenue.per_minute: a window of one minute per country, on order time.

A tumbling window of the processor's own state (pipeline.stores): no
database, restored from its changelog by whichever replica takes the
partition. The enriched orders are keyed by customer, so each partition
sums its own customers' orders per country; every order updates its
window, and the latest update of each (country, minute, partition) is that
partition's share. The grace is long (an hour): a late order still counts,
so the demo can check the sums to the cent.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pipeline import Context, Processor, Sum, Window
from topics import ORDERS_ENRICHED, REVENUE_PER_MINUTE
from topics.fx import to_eur
from topics.models import CountryRevenue, EnrichedOrder

PER_MINUTE = Window.tumbling("revenue_per_minute", 60, Sum(), grace_s=3600, emit="update")


async def revenue(order: EnrichedOrder, ctx: Context) -> list[CountryRevenue]:
    amount = (
        order.amount_eur if order.amount_eur is not None else to_eur(order.amount, order.currency)
    )
    updated = ctx.window(PER_MINUTE).add(order.country, amount, at=order.placed_at)
    partition = ctx.record.partition if ctx.record is not None else 0
    return [
        CountryRevenue(
            country=window.key,
            minute=datetime.fromtimestamp(window.start_ms / 1000, UTC),
            source_partition=partition,
            revenue_eur=window.value,
        )
        for window in updated
    ]


REVENUE_PER_MINUTE_PROCESSOR = Processor(
    "revenue_per_minute",
    ORDERS_ENRICHED,
    revenue,
    outputs=(REVENUE_PER_MINUTE,),
    windows=(PER_MINUTE,),
)
