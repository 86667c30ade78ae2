"""Reading a whole topic back, from the start to the end offsets seen now.

For tests, benchmarks and tools that check what a topic holds; it uses no
consumer group, so it disturbs nobody.
"""

from __future__ import annotations

import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from pipeline.settings import PipelineSettings
from pipeline.topic_metadata import partition_count


async def read_all(
    settings: PipelineSettings,
    topic: str,
    timeout_s: float = 60.0,
    committed_only: bool = False,
) -> list[ConsumerRecord]:
    """Every record of every partition, from the start to the end offsets seen now.

    `committed_only` reads as a read_committed consumer does: records of
    aborted or still open transactions are left out.
    """
    consumer = AIOKafkaConsumer(
        **settings.client_kwargs(),
        enable_auto_commit=False,
        isolation_level="read_committed" if committed_only else "read_uncommitted",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    try:
        count = await partition_count(consumer._client, topic)
        partitions = [TopicPartition(topic, p) for p in range(count)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout_s
        remaining = {tp for tp in partitions if end[tp] > 0}
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"reading {topic} did not reach the end offsets {end} in {timeout_s}s"
                )
            batches = await consumer.getmany(timeout_ms=500, max_records=50_000)
            for batch in batches.values():
                records.extend(batch)
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
        return records
    finally:
        await consumer.stop()


async def read_ranges(
    settings: PipelineSettings,
    topic: str,
    ranges: dict[int, tuple[int, int]],
    timeout_s: float = 120.0,
) -> list[ConsumerRecord]:
    """The records of [start, end) per partition, in offset order per partition."""
    wanted = {
        TopicPartition(topic, p): bounds for p, bounds in ranges.items() if bounds[1] > bounds[0]
    }
    if not wanted:
        return []
    consumer = AIOKafkaConsumer(
        **settings.client_kwargs(),
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    try:
        consumer.assign(list(wanted))
        for tp, (start, _) in wanted.items():
            consumer.seek(tp, start)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout_s
        remaining = set(wanted)
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} did not reach {ranges} in {timeout_s}s")
            batches = await consumer.getmany(*remaining, timeout_ms=500, max_records=50_000)
            for tp, batch in batches.items():
                records.extend(r for r in batch if r.offset < wanted[tp][1])
            for tp in list(remaining):
                if await consumer.position(tp) >= wanted[tp][1]:
                    remaining.discard(tp)
                    consumer.pause(tp)
        return records
    finally:
        await consumer.stop()
