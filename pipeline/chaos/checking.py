"""The processor every chaos scenario runs: keyed events with a per-key sequence, passed on.

Each input carries its key's sequence number; the output repeats it with
the input's partition and offset and the replica that handled it, so the
verdict (pipeline.chaos.verdict) can tell lost, repeated and reordered
events apart from the topics alone. Workers load it with
PIPELINE_PROCESSORS_MODULE=pipeline.chaos.checking and a topic prefix per
scenario run.
"""

from __future__ import annotations

import dataclasses
import os
import time

from pydantic import BaseModel, ConfigDict

from pipeline.catalogue import TopicSpec
from pipeline.processor import Context, Processor
from pipeline.stores.store_spec import Store
from pipeline.stores.table import Table

PROCESSOR = "chaos_check"
EXACTLY_ONCE_PROCESSOR = "chaos_check_eos"
STATEFUL_PROCESSOR = "chaos_count"
STATEFUL_EXACTLY_ONCE_PROCESSOR = "chaos_count_eos"
PARTITIONS = 6


class Sequenced(BaseModel):
    model_config = ConfigDict(extra="ignore")
    key: str
    seq: int
    block_s: float = 0.0
    """Scenario `blocked-loop`: the handler blocks the event loop this long (a bug on purpose)..."""
    block_claim: str = ""
    """...once: the handler that renames this file away blocks; a redelivery does not. (Blocking
    on every delivery is a poison pill: each owner is dropped from the group in turn.)"""
    payload: str = ""
    probe: str = ""
    """Scenario `kill9`: look this key up in the replica's table and report its version."""


class TableRow(BaseModel):
    """What the table scenario updates in bursts: a key's latest version wins."""

    key: str
    version: int


class Checked(BaseModel):
    key: str
    seq: int
    source_partition: int
    source_offset: int
    replica: str
    probe: str = ""
    table_version: int = -1
    """The probed key's version in this replica's table; -1 when it has none."""
    count: int = -1
    """The stateful checkers: the key's events counted so far, this one included (a store
    with a changelog and a standby); -1 from the stateless ones."""


INPUT = TopicSpec(
    name="chaos.in",
    event_model=Sequenced,
    key_field="key",
    partitions=PARTITIONS,
    replication_factor=3,
    min_insync_replicas=2,
)
OUTPUT = TopicSpec(
    name="chaos.out",
    event_model=Checked,
    key_field="key",
    partitions=PARTITIONS,
    replication_factor=3,
    min_insync_replicas=2,
)
TABLE_TOPIC = TopicSpec(
    name="chaos.table",
    event_model=TableRow,
    key_field="key",
    partitions=PARTITIONS,
    replication_factor=3,
    min_insync_replicas=2,
    cleanup_policy="compact",
    retention_ms=None,
    dlq=False,
)
TABLE = Table("chaos_table", TABLE_TOPIC)
SEEN: Store[int] = Store("seen")
TOPICS: list[TopicSpec[BaseModel]] = [INPUT, INPUT.dlq_spec(), OUTPUT, TABLE_TOPIC]


async def check(event: Sequenced, ctx: Context) -> Checked:
    if event.block_s > 0 and _claim(event.block_claim):
        # Deliberately not awaited: a handler that blocks the loop (scenario 7).
        time.sleep(event.block_s)  # noqa: ASYNC251
    record = ctx.record
    assert record is not None
    version = -1
    if event.probe:
        row = await ctx.table(TABLE).get(event.probe)
        version = -1 if row is None else row.version
    return Checked(
        key=event.key,
        seq=event.seq,
        source_partition=record.partition,
        source_offset=record.offset,
        replica=ctx.replica_id,
        probe=event.probe,
        table_version=version,
    )


async def check_and_count(event: Sequenced, ctx: Context) -> Checked:
    checked = await check(event, ctx)
    checked.count = ctx.store(SEEN).increment(event.key, 1)
    return checked


def _claim(path: str) -> bool:
    try:
        os.rename(path, path + ".claimed")  # atomic: one handler in any process wins
    except OSError:
        return False
    return True


# State is per partition and one lane writes it (lanes=1): what a stateful job runs.
COUNTING = Processor(
    STATEFUL_PROCESSOR,
    INPUT,
    check_and_count,
    outputs=(OUTPUT,),
    queue_records=2000,
    tables=(TABLE,),
    stores=(SEEN,),
    standbys=1,
)

PROCESSORS = {
    PROCESSOR: Processor(
        PROCESSOR, INPUT, check, outputs=(OUTPUT,), lanes=4, queue_records=2000, tables=(TABLE,)
    ),
    EXACTLY_ONCE_PROCESSOR: Processor(
        EXACTLY_ONCE_PROCESSOR,
        INPUT,
        check,
        outputs=(OUTPUT,),
        lanes=4,
        queue_records=2000,
        tables=(TABLE,),
        exactly_once=True,
    ),
    STATEFUL_PROCESSOR: COUNTING,
    STATEFUL_EXACTLY_ONCE_PROCESSOR: dataclasses.replace(
        COUNTING, name=STATEFUL_EXACTLY_ONCE_PROCESSOR, exactly_once=True
    ),
}
