"""Processors for bench/cache.py: the example enrichment with its cache, and without one.

`enrich_cached` is consumers' enrich_orders as it ships (table + local cache,
misses loaded from PostgreSQL); `enrich_uncached` asks PostgreSQL for every
order's customer, as a consumer without a cache would.
"""

from __future__ import annotations

import dataclasses

from consumers.enrich_orders import ENRICH_ORDERS, enrich_with, load_customer
from pipeline.processor import Context, PermanentError, Processor
from topics.models import EnrichedOrder, Order


async def enrich_uncached(order: Order, ctx: Context) -> EnrichedOrder:
    customer = await ctx.call("postgres", load_customer, order.customer_id, ctx.services)
    if customer is None:
        raise PermanentError(f"order {order.order_id}: unknown customer {order.customer_id!r}")
    return enrich_with(order, customer)


PROCESSORS: dict[str, Processor] = {
    "enrich_cached": dataclasses.replace(ENRICH_ORDERS, name="enrich_cached"),
    "enrich_uncached": dataclasses.replace(
        ENRICH_ORDERS, name="enrich_uncached", handler=enrich_uncached, tables=()
    ),
}
