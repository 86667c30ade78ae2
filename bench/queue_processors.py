"""Processors for bench/queue.py: 20 ms of work per record, as a queue and as a stream.

Run with PIPELINE_PROCESSORS_MODULE=bench.queue_processors and a
PIPELINE_TOPIC_PREFIX unique to the round. `blocking`: a synchronous call
(`run_in="thread"`) holding the replica's one client for 20 ms, so one
record at a time per replica whatever the pool's size; `awaiting`: an
`async` handler awaiting 20 ms, as many at once as the mode lets run.
"""

from __future__ import annotations

import asyncio
import threading
import time

from pydantic import BaseModel

from pipeline.catalogue import TopicSpec
from pipeline.processor import Context, Processor
from pipeline.queue_policy import QueuePolicy

WORK_S = 0.02
PARTITIONS = 3
AWAITING_LANES = 8
"""The stream's concurrency per partition for the awaiting handler (per-key lanes)."""
AWAITING_SLOTS = 8
"""The queue's concurrency per replica for the awaiting handler: as many records at once."""


class Job(BaseModel):
    key: str
    n: int


class Done(BaseModel):
    key: str
    n: int


JOBS = TopicSpec(
    name="queue.jobs",
    event_model=Job,
    key_field="key",
    partitions=PARTITIONS,
    replication_factor=1,
)
DONE = TopicSpec(
    name="queue.done",
    event_model=Done,
    key_field="key",
    partitions=PARTITIONS,
    replication_factor=1,
)
TOPICS = [JOBS, JOBS.dlq_spec(), DONE]

_one_client = threading.Lock()


def blocking(job: Job) -> Done:
    """A synchronous client the replica has one of: one call at a time."""
    with _one_client:
        time.sleep(WORK_S)
    return Done(key=job.key, n=job.n)


async def awaiting(job: Job, ctx: Context) -> Done:
    await asyncio.sleep(WORK_S)
    return Done(key=job.key, n=job.n)


PROCESSORS: dict[str, Processor[Job]] = {
    "blocking_queue": Processor(
        "blocking_queue",
        JOBS,
        blocking,
        outputs=(DONE,),
        run_in="thread",
        delivery="queue",
        queue=QueuePolicy(slots=1, record_lock_s=15),
    ),
    "blocking_stream": Processor(
        "blocking_stream", JOBS, blocking, outputs=(DONE,), run_in="thread", batch_records=50
    ),
    "awaiting_queue": Processor(
        "awaiting_queue",
        JOBS,
        awaiting,
        outputs=(DONE,),
        delivery="queue",
        queue=QueuePolicy(slots=AWAITING_SLOTS, record_lock_s=15),
    ),
    "awaiting_stream": Processor(
        "awaiting_stream", JOBS, awaiting, outputs=(DONE,), lanes=AWAITING_LANES, batch_records=50
    ),
}
