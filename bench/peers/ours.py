"""Our runtime: `pipeline worker enrich --processors-module bench.peers.ours`."""

from __future__ import annotations

import asyncio
import os

from bench.peers.work import SLOW_S, enrich, is_slow
from pipeline.processor import Context, Processor
from topics import ORDERS, ORDERS_ENRICHED
from topics.models import EnrichedOrder, Order

SOURCE = ORDERS.with_name(os.environ.get("PEERS_INPUT", "orders"))
OUTPUT = ORDERS_ENRICHED.with_name(os.environ.get("PEERS_OUTPUT", "orders.enriched"))


async def handle(order: Order, ctx: Context) -> EnrichedOrder:
    if ctx.record is not None and is_slow(ctx.record.partition):
        await asyncio.sleep(SLOW_S)  # a slow dependency, as an async app waits for one
    return enrich(order)


PROCESSORS = {
    "enrich": Processor(
        "peers-ours",
        SOURCE,
        handle,
        outputs=(OUTPUT,),
        batch_records=int(os.environ.get("PEERS_BATCH", "1000")),
        group=os.environ.get("PEERS_GROUP"),
    ),
}
