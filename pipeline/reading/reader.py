"""Reading a whole topic back, from the start to the end offsets seen now.

For tests, benchmarks and tools that check what a topic holds; it uses no
consumer group, so it disturbs nobody.
"""

from __future__ import annotations

import time

from pipeline.kafka.port import Clients, ConsumerOptions, Record, TopicPartition

READ_FETCH_BYTES = 8 * 1024 * 1024


async def read_all(
    clients: Clients,
    topic: str,
    timeout_s: float = 60.0,
    committed_only: bool = False,
) -> list[Record]:
    """Every record of every partition, from the start to the end offsets seen now.

    `committed_only` reads as a read_committed consumer does: records of
    aborted or still open transactions are left out.
    """
    consumer = clients.consumer(
        ConsumerOptions(
            isolation="read_committed" if committed_only else "read_uncommitted",
            max_partition_fetch_bytes=READ_FETCH_BYTES,
            fetch_max_bytes=8 * READ_FETCH_BYTES,
        )
    )
    await consumer.start()
    try:
        count = await consumer.partition_count(topic)
        partitions = [TopicPartition(topic, p) for p in range(count)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        records: list[Record] = []
        deadline = time.monotonic() + timeout_s
        remaining = {tp for tp in partitions if end[tp] > 0}
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"reading {topic} did not reach the end offsets {end} in {timeout_s}s"
                )
            batches = await consumer.fetch((), 0.5, 50_000)
            for batch in batches.values():
                records.extend(batch)
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
        return records
    finally:
        await consumer.stop()


async def read_ranges(
    clients: Clients,
    topic: str,
    ranges: dict[int, tuple[int, int]],
    timeout_s: float = 120.0,
) -> list[Record]:
    """The records of [start, end) per partition, in offset order per partition."""
    wanted = {
        TopicPartition(topic, p): bounds for p, bounds in ranges.items() if bounds[1] > bounds[0]
    }
    if not wanted:
        return []
    consumer = clients.consumer(ConsumerOptions(max_partition_fetch_bytes=READ_FETCH_BYTES))
    await consumer.start()
    try:
        consumer.assign(list(wanted))
        for tp, (start, _) in wanted.items():
            consumer.seek(tp, start)
        records: list[Record] = []
        deadline = time.monotonic() + timeout_s
        remaining = set(wanted)
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} did not reach {ranges} in {timeout_s}s")
            batches = await consumer.fetch(remaining, 0.5, 50_000)
            for tp, batch in batches.items():
                records.extend(r for r in batch if r.offset < wanted[tp][1])
            for tp in list(remaining):
                if await consumer.position(tp) >= wanted[tp][1]:
                    remaining.discard(tp)
                    consumer.pause(tp)
        return records
    finally:
        await consumer.stop()
