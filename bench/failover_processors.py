"""Processors for bench/failover.py: one count per key, with a standby replica and without.

Run with PIPELINE_PROCESSORS_MODULE=bench.failover_processors and a
PIPELINE_TOPIC_PREFIX unique to the round.
"""

from __future__ import annotations

from pydantic import BaseModel

from pipeline.catalogue import TopicSpec
from pipeline.processor import Context, Processor
from pipeline.stores.store_spec import Store

PARTITIONS = 6


class Visit(BaseModel):
    key: str


VISITS = TopicSpec(
    name="failover.visits",
    event_model=Visit,
    key_field="key",
    partitions=PARTITIONS,
    replication_factor=1,
)
COUNTS: Store[int] = Store("counts")


async def count(visit: Visit, ctx: Context) -> None:
    ctx.store(COUNTS).increment(visit.key, 1)


PROCESSORS: dict[str, Processor[Visit]] = {
    "cold": Processor("cold", VISITS, count, stores=(COUNTS,)),
    "warm": Processor("warm", VISITS, count, stores=(COUNTS,), standbys=1),
}
