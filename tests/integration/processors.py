"""Processors the runtime tests run in real worker processes.

Run with PIPELINE_PROCESSORS_MODULE=tests.integration.processors and a
PIPELINE_TOPIC_PREFIX unique to the test.
"""

from __future__ import annotations

import asyncio
import os
import time

from pydantic import BaseModel, ConfigDict

from pipeline.catalogue import TopicSpec
from pipeline.processor import Context, PermanentError, Processor
from pipeline.queue_policy import QueuePolicy
from pipeline.resilience.breaker import BreakerPolicy
from pipeline.resilience.retry import RetryPolicy
from pipeline.stores.store_spec import Store


class Keyed(BaseModel):
    model_config = ConfigDict(extra="ignore")
    key: str
    seq: int
    mode: str = ""
    payload: str = ""


class Handled(BaseModel):
    key: str
    seq: int
    source_id: str
    replica: str


SOURCE = TopicSpec(
    name="runtime.in", event_model=Keyed, key_field="key", partitions=12, replication_factor=1
)
OUTPUT = TopicSpec(
    name="runtime.out", event_model=Handled, key_field="key", partitions=12, replication_factor=1
)
FINAL = TopicSpec(
    name="runtime.final", event_model=Handled, key_field="key", partitions=12, replication_factor=1
)
JSON_SOURCE = TopicSpec(
    name="json.in",
    event_model=Keyed,
    key_field="key",
    partitions=4,
    replication_factor=1,
    format="json",
)
JSON_OUTPUT = TopicSpec(
    name="json.out",
    event_model=Handled,
    key_field="key",
    partitions=4,
    replication_factor=1,
    format="json",
)
"""Topics in JSON, as another team's services would write and read them."""
AVRO_SOURCE = TopicSpec(
    name="avro.in",
    event_model=Keyed,
    key_field="key",
    partitions=4,
    replication_factor=1,
    format="avro",
)
AVRO_OUTPUT = TopicSpec(
    name="avro.out",
    event_model=Handled,
    key_field="key",
    partitions=4,
    replication_factor=1,
    format="avro",
)
"""Topics in Avro through the schema registry (PIPELINE_SCHEMA_REGISTRY__URL)."""
TOPICS = [SOURCE, SOURCE.dlq_spec(), OUTPUT]


class Taken(BaseModel):
    """What a queue-mode processor made of a record: at which delivery, by which replica."""

    key: str
    seq: int
    attempt: int
    source_id: str
    replica: str


QUEUE_SOURCE = TopicSpec(
    name="queue.in", event_model=Keyed, key_field="key", partitions=3, replication_factor=1
)
QUEUE_OUTPUT = TopicSpec(
    name="queue.out", event_model=Taken, key_field="key", partitions=3, replication_factor=1
)
QUEUE_TOPICS = [QUEUE_SOURCE, QUEUE_SOURCE.dlq_spec(), QUEUE_OUTPUT]
NARROW_QUEUE = TopicSpec(
    name="queue.narrow", event_model=Keyed, key_field="key", partitions=2, replication_factor=1
)
"""Two partitions: a stream could never use more than two replicas on it."""
CHAINED_TOPICS = [OUTPUT.dlq_spec(), FINAL]
"""What the second of two chained processors needs besides TOPICS (created by its test)."""


def handled(event: Keyed, ctx: Context) -> Handled:
    return Handled(key=event.key, seq=event.seq, source_id=ctx.event_id, replica=ctx.replica_id)


async def relay(event: Handled, ctx: Context) -> Handled:
    """The second hop of a chain: the first hop's output, passed on."""
    return event


async def passthrough(event: Keyed, ctx: Context) -> Handled:
    return handled(event, ctx)


async def poison(event: Keyed, ctx: Context) -> Handled:
    if event.mode == "permanent":
        raise PermanentError(f"order {event.seq} can never be processed")
    if event.mode == "bug":
        raise RuntimeError(f"handler bug on seq {event.seq}")
    return handled(event, ctx)


async def slow(event: Keyed, ctx: Context) -> Handled:
    if event.mode == "slow":
        await asyncio.sleep(0.2)
    return handled(event, ctx)


async def _flaky_dependency() -> None:
    """Down while the file named by RUNTIME_OUTAGE_FILE exists."""
    marker = os.environ.get("RUNTIME_OUTAGE_FILE")
    if marker and os.path.exists(marker):  # noqa: ASYNC240 - a stat per call, test only
        raise ConnectionError("dependency is down")


async def outage(event: Keyed, ctx: Context) -> Handled:
    await ctx.call("flaky-db", _flaky_dependency)
    return handled(event, ctx)


async def stuck(event: Keyed, ctx: Context) -> Handled:
    """`mode="stuck"` never returns: a handler hung on something with no timeout."""
    if event.mode == "stuck":
        await asyncio.Event().wait()
    return handled(event, ctx)


async def hangs(event: Keyed, ctx: Context) -> Handled:
    """`mode="hang"` awaits an event nobody sets: what a call without a timeout does."""
    if event.mode == "hang":
        await asyncio.Event().wait()
    return handled(event, ctx)


async def spins(event: Keyed, ctx: Context) -> Handled:
    """`mode="spin"` never yields again: a loop without end (what a backtracking regex does),
    on every delivery; the worker's watchdog must end the process."""
    if event.mode == "spin":
        while True:
            pass
    return handled(event, ctx)


async def buggy(event: Keyed, ctx: Context) -> Handled:
    """Fails for `mode="bug"` events while the file named by RUNTIME_BUG_FILE exists."""
    marker = os.environ.get("RUNTIME_BUG_FILE")
    if event.mode == "bug" and marker and os.path.exists(marker):  # noqa: ASYNC240 - test only
        raise ValueError(f"handler bug on seq {event.seq}")
    return handled(event, ctx)


_one_at_a_time: asyncio.Semaphore | None = None


async def paced(event: Keyed, ctx: Context) -> Handled:
    """5 ms of I/O per event, one at a time per process: ~200 events/s per replica.

    A stand-in for a handler bound by something each replica has one of (a
    connection, a licence), so that more replicas really do help on 2 cores.
    """
    global _one_at_a_time
    if _one_at_a_time is None:
        _one_at_a_time = asyncio.Semaphore(1)
    async with _one_at_a_time:
        await asyncio.sleep(0.005)
    return handled(event, ctx)


def cpu_heavy(event: Keyed) -> Handled:
    """Pure CPU for ~50 ms, in a process pool: would starve heartbeats on the loop."""
    deadline = time.perf_counter() + 0.05
    spins = 0
    while time.perf_counter() < deadline:
        spins += 1
    return Handled(key=event.key, seq=event.seq, source_id=f"cpu-{spins > 0}", replica="pool")


FAST_RETRY = RetryPolicy(attempts=3, base_delay_s=0.01, max_delay_s=0.05)


async def mail(event: Keyed, ctx: Context) -> Taken:
    """A queue's job: `mode="flaky"` fails its first two deliveries, `"doomed"` every one."""
    if event.mode == "flaky" and ctx.attempt <= 2:
        raise ConnectionResetError(f"seq {event.seq}: the mail server hung up")
    if event.mode == "doomed":
        raise ValueError(f"seq {event.seq}: no such mailbox")
    await asyncio.sleep(0.001)
    return Taken(
        key=event.key,
        seq=event.seq,
        attempt=ctx.attempt,
        source_id=ctx.event_id,
        replica=ctx.replica_id,
    )


COUNTS: Store[int] = Store("counts")


async def count_per_key(event: Keyed, ctx: Context) -> None:
    """State of its own: how many events each key had (pipeline.stores)."""
    ctx.store(COUNTS).increment(event.key, 1)


async def mail_slowly(event: Keyed, ctx: Context) -> Taken:
    """20 ms of I/O per record: 50 records/s for a replica of one slot."""
    await asyncio.sleep(0.02)
    return await mail(event, ctx)


PROCESSORS = {
    "slow_mailer": Processor(
        "slow_mailer",
        NARROW_QUEUE,
        mail_slowly,
        outputs=(QUEUE_OUTPUT,),
        delivery="queue",
        queue=QueuePolicy(slots=1, record_lock_s=15),
    ),
    "mailer": Processor(
        "mailer",
        QUEUE_SOURCE,
        mail,
        outputs=(QUEUE_OUTPUT,),
        retry=RetryPolicy(attempts=4, base_delay_s=0.01, max_delay_s=0.05),
        delivery="queue",
        queue=QueuePolicy(slots=2, record_lock_s=15),
    ),
    "counter": Processor(
        "counter", SOURCE, count_per_key, stores=(COUNTS,), queue_records=5000, batch_records=500
    ),
    "counter_eos": Processor(
        "counter_eos",
        SOURCE,
        count_per_key,
        stores=(COUNTS,),
        queue_records=5000,
        batch_records=500,
        exactly_once=True,
        standbys=1,
    ),
    "passthrough": Processor(
        "passthrough", SOURCE, passthrough, outputs=(OUTPUT,), lanes=4, queue_records=5000
    ),
    "passthrough_eos": Processor(
        "passthrough_eos",
        SOURCE,
        passthrough,
        outputs=(OUTPUT,),
        lanes=4,
        queue_records=5000,
        exactly_once=True,
    ),
    "relay_eos": Processor("relay_eos", OUTPUT, relay, outputs=(FINAL,), exactly_once=True),
    "poison": Processor("poison", SOURCE, poison, outputs=(OUTPUT,), retry=FAST_RETRY),
    "slow": Processor(
        "slow", SOURCE, slow, outputs=(OUTPUT,), queue_records=2000, batch_records=50
    ),
    "outage": Processor(
        "outage",
        SOURCE,
        outage,
        outputs=(OUTPUT,),
        retry=FAST_RETRY,
        dependencies={
            "flaky-db": BreakerPolicy(minimum_calls=5, open_duration_s=1.0, half_open_calls=2)
        },
    ),
    "stuck": Processor("stuck", SOURCE, stuck, outputs=(OUTPUT,)),
    "buggy": Processor("buggy", SOURCE, buggy, outputs=(OUTPUT,), retry=FAST_RETRY),
    "hangs": Processor(
        "hangs", SOURCE, hangs, outputs=(OUTPUT,), handler_timeout_s=1.0, retry=FAST_RETRY
    ),
    "spins": Processor("spins", SOURCE, spins, outputs=(OUTPUT,), retry=FAST_RETRY),
    "paced": Processor(
        "paced", SOURCE, paced, outputs=(OUTPUT,), lanes=4, queue_records=1000, batch_records=50
    ),
    "json_passthrough": Processor(
        "json_passthrough", JSON_SOURCE, passthrough, outputs=(JSON_OUTPUT,), lanes=4
    ),
    "avro_passthrough": Processor(
        "avro_passthrough", AVRO_SOURCE, passthrough, outputs=(AVRO_OUTPUT,), lanes=4
    ),
    "cpu": Processor(
        "cpu", SOURCE, cpu_heavy, outputs=(OUTPUT,), run_in="process", batch_records=20, lanes=4
    ),
}
