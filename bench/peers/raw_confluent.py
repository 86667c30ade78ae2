"""A hand-written confluent-kafka loop: take what has arrived, produce, flush, commit.

The loop most applications on confluent-kafka start from: synchronous, one
thread, the client's default settings but for acks=all and idempotence (as
every contestant has), the batch's outputs flushed before its offsets are
committed. It writes the same records as raw_aiokafka (value and headers).
"""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from types import FrameType

from confluent_kafka import Consumer, Producer, TopicPartition

from bench.peers.work import enrich_bytes
from pipeline.kafka.partitioner import kafka_partition

EVENT_TYPE = ("event-type", b"order.enriched")
SCHEMA_VERSION = ("schema-version", b"1")


def main(bootstrap: str, source: str, output: str, group: str) -> None:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    partitions = len(producer.list_topics(output, timeout=10).topics[output].partitions)
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    consumer.subscribe([source])
    try:
        while not stopping:
            # Wait for one record, then take what else has arrived without waiting:
            # consume(n, timeout) alone would wait out its timeout whenever fewer
            # than n are there, a latency no careful hand-written loop keeps.
            first = consumer.poll(0.2)
            if first is None:
                continue
            records = [first, *consumer.consume(num_messages=9_999, timeout=0)]
            offsets: dict[tuple[str, int], int] = {}
            produced_at = ("produced-at", str(time.time_ns() // 1_000_000).encode())
            for record in records:
                if record.error():
                    raise RuntimeError(f"consume failed: {record.error()}")
                key = record.key()
                headers = [
                    EVENT_TYPE,
                    SCHEMA_VERSION,
                    ("event-id", str(uuid.uuid4()).encode()),
                    produced_at,
                ]
                while True:
                    try:
                        producer.produce(
                            output,
                            enrich_bytes(record.value()),
                            key,
                            partition=kafka_partition(key, partitions),
                            headers=headers,
                        )
                        break
                    except BufferError:  # the local queue is full: serve deliveries
                        producer.poll(0.05)
                offsets[(record.topic(), record.partition())] = record.offset() + 1
            if offsets:
                if producer.flush(60) > 0:
                    raise RuntimeError("outputs not acknowledged within 60 s")
                consumer.commit(
                    offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                    asynchronous=False,
                )
    finally:
        consumer.close()


if __name__ == "__main__":
    main(os.environ["PEERS_BOOTSTRAP"], sys.argv[1], sys.argv[2], sys.argv[3])
