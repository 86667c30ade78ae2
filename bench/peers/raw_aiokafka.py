"""A hand-written aiokafka loop: getmany, per-partition send_batch, commit after acks.

It writes the same records the other contestants write: the enriched value
and the wire format's headers (event-type, schema-version, event-id,
produced-at), as an application following DESIGN.md's wire format must.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.peers.work import enrich_bytes
from pipeline.kafka.partitioner import kafka_partition

EVENT_TYPE = ("event-type", b"order.enriched")
SCHEMA_VERSION = ("schema-version", b"1")


async def main(bootstrap: str, source: str, output: str, group: str) -> None:
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=2 * 1024 * 1024,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, max_batch_size=512 * 1024
    )
    await consumer.start()
    await producer.start()
    partitions = len(await producer.partitions_for(output))
    try:
        while True:
            fetched = await consumer.getmany(timeout_ms=200, max_records=10_000)
            futures = []
            offsets = {}
            produced_at = ("produced-at", str(time.time_ns() // 1_000_000).encode())
            for tp, records in fetched.items():
                batches: dict[int, object] = {}
                for record in records:
                    value = enrich_bytes(record.value)
                    headers = [
                        EVENT_TYPE,
                        SCHEMA_VERSION,
                        ("event-id", str(uuid.uuid4()).encode()),
                        produced_at,
                    ]
                    partition = kafka_partition(record.key, partitions)
                    batch = batches.get(partition)
                    if batch is None:
                        batch = batches[partition] = producer.create_batch()
                    if (
                        batch.append(key=record.key, value=value, timestamp=None, headers=headers)
                        is None
                    ):  # type: ignore[attr-defined]
                        futures.append(
                            await producer.send_batch(batch, output, partition=partition)
                        )
                        batch = batches[partition] = producer.create_batch()
                        batch.append(key=record.key, value=value, timestamp=None, headers=headers)  # type: ignore[attr-defined]
                for partition, batch in batches.items():
                    futures.append(await producer.send_batch(batch, output, partition=partition))
                offsets[tp] = records[-1].offset + 1
            if futures:
                await asyncio.gather(*futures)
            if offsets:
                await consumer.commit(offsets)
    finally:
        await consumer.stop()
        await producer.stop()


if __name__ == "__main__":
    asyncio.run(main(os.environ["PEERS_BOOTSTRAP"], sys.argv[1], sys.argv[2], sys.argv[3]))
