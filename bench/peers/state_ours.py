"""Our runtime on the stateful job (bench/state.py): `pipeline worker state` with this module."""

from __future__ import annotations

import os
from decimal import Decimal

from bench.peers.state_job import OUTPUT, Running
from pipeline.processor import Context, Processor
from pipeline.stores.store_spec import Store
from topics import ORDERS
from topics.models import Order

ORDERS_COUNT: Store[int] = Store("orders")
TOTALS: Store[Decimal] = Store("totals")


async def running(order: Order, ctx: Context) -> Running:
    orders = ctx.store(ORDERS_COUNT).increment(order.customer_id, 1)
    total = ctx.store(TOTALS).increment(order.customer_id, order.amount)
    return Running(customer_id=order.customer_id, orders=orders, total=total)


PROCESSORS = {
    "state": Processor(
        "peers-state",
        ORDERS.with_name(os.environ.get("PEERS_INPUT", "orders")),
        running,
        outputs=(OUTPUT,),
        stores=(ORDERS_COUNT, TOTALS),
        batch_records=int(os.environ.get("PEERS_BATCH", "1000")),
        group=os.environ.get("PEERS_GROUP"),
    ),
}
