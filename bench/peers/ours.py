"""Our runtime: `pipeline worker enrich --processors-module bench.peers.ours`."""

from __future__ import annotations

import asyncio
import dataclasses
import os

from bench.peers.work import SLOW_S, enrich, is_slow
from pipeline.processor import Context, Processor
from topics import ORDERS, ORDERS_ENRICHED
from topics.models import EnrichedOrder, Order

FORMAT = os.environ.get("PEERS_FORMAT", "msgpack")
"""The topics' body format (bench/formats.py runs the job in each)."""
SOURCE = dataclasses.replace(
    ORDERS.with_name(os.environ.get("PEERS_INPUT", "orders")), format=FORMAT
)
OUTPUT = dataclasses.replace(
    ORDERS_ENRICHED.with_name(os.environ.get("PEERS_OUTPUT", "orders.enriched")), format=FORMAT
)


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
