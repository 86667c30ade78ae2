"""The stateful job of bench/state.py: a running count and sum per customer, one output each.

Both contestants decode and validate the order, update two values of state
for its customer, and publish the customer's running figures: only the
framework (and its state) differs.
"""

from __future__ import annotations

import os
from decimal import Decimal

from pydantic import BaseModel

from pipeline.catalogue import TopicSpec

CUSTOMERS = 100_000


class Running(BaseModel):
    customer_id: str
    orders: int
    total: Decimal


def running_topic(name: str) -> TopicSpec[Running]:
    return TopicSpec(
        name=name, event_model=Running, key_field="customer_id", partitions=12, replication_factor=1
    )


OUTPUT = running_topic(os.environ.get("PEERS_OUTPUT", "running"))
