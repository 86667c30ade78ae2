"""Topics, a processor and replicas for the runtime's tests on the in-memory broker."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import msgpack
from pydantic import BaseModel

from pipeline.catalogue import TopicSpec
from pipeline.kafka.memory import MemoryBroker, MemoryClients
from pipeline.kafka.port import TopicPartition
from pipeline.ops.replay import ReplayPlan
from pipeline.processor import Processor
from pipeline.runtime.worker import Runtime, WorkerOptions
from pipeline.settings import PipelineSettings
from pipeline.wire.codec import header_value


class Step(BaseModel):
    """An input: `n` is unique and increases per key, so outputs show order and loss."""

    key: str
    n: int
    mode: str = ""
    """How the handler treats it: "" ok, "permanent", "flaky" (fails once), "slow"."""


class Done(BaseModel):
    key: str
    n: int


SOURCE = TopicSpec("steps", Step, "key", partitions=3, replication_factor=1)
OUTPUT = TopicSpec("done", Done, "key", partitions=3, replication_factor=1)


def new_broker(source: TopicSpec[Step] = SOURCE) -> MemoryBroker:
    broker = MemoryBroker()
    for spec in (source, source.dlq_spec(), OUTPUT):
        broker.create_topic(spec.name, spec.partitions, spec.topic_configs(1))
    return broker


def settings() -> PipelineSettings:
    return PipelineSettings(bootstrap_servers="memory://")


async def start_replica(
    broker: MemoryBroker,
    processor: Processor[Step],
    replica_id: str,
    cache_dir: Path,
    replay: ReplayPlan | None = None,
    clients: MemoryClients | None = None,
    worker_settings: PipelineSettings | None = None,
) -> tuple[Runtime, asyncio.Future[int]]:
    options = WorkerOptions(
        replica_id=replica_id,
        handle_signals=False,
        commit_interval_s=0.02,
        cache_dir=cache_dir,
        store_dir=cache_dir / "stores",
        drain_deadline_s=10.0,
    )
    runtime = await Runtime.open(
        worker_settings or settings(),
        processor,
        options,
        replay=replay,
        clients=clients or MemoryClients(broker),
    )
    assert runtime is not None
    return runtime, asyncio.ensure_future(runtime.run())


def values(broker: MemoryBroker, topic: str) -> list[tuple[int, int, dict[str, object]]]:
    """(partition, offset, fields) of every record on a topic."""
    found = []
    for log in broker.topic(topic).partitions:
        for entry in log.entries:
            record = entry.record
            if record is not None and record.value is not None:
                found.append((record.partition, record.offset, msgpack.unpackb(record.value)))
    return found


def dead_source_offsets(broker: MemoryBroker, source: str) -> set[tuple[int, int]]:
    """(partition, offset) of every source record in the DLQ."""
    found = set()
    for log in broker.topic(source + ".dlq").partitions:
        for entry in log.entries:
            if entry.record is not None:
                headers = entry.record.headers
                found.add(
                    (
                        int(header_value(headers, "dlq-source-partition") or -1),
                        int(header_value(headers, "dlq-source-offset") or -1),
                    )
                )
    return found


def outputs_by_key(broker: MemoryBroker) -> dict[str, list[int]]:
    """Each key's output `n`s in the order its partition stored them."""
    by_key: dict[str, list[int]] = defaultdict(list)
    for _, _, fields in values(broker, OUTPUT.name):
        by_key[str(fields["key"])].append(int(str(fields["n"])))
    return by_key


def committed(broker: MemoryBroker, group: str, topic: str = SOURCE.name) -> dict[int, int]:
    commits = broker.group(group).commits
    return {tp.partition: c.offset for tp, c in commits.items() if tp.topic == topic}


def ends(broker: MemoryBroker, topic: str = SOURCE.name) -> dict[int, int]:
    return {log.partition: log.high_watermark for log in broker.topic(topic).partitions}


async def until(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout_s:g}s for {what}")
        await asyncio.sleep(0.005)


def all_committed(broker: MemoryBroker, group: str) -> bool:
    done = committed(broker, group)
    return all(done.get(p, 0) >= end for p, end in ends(broker).items() if end)


def tp(partition: int) -> TopicPartition:
    return TopicPartition(SOURCE.name, partition)
