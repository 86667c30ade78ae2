"""Producer throughput: our EventProducer against raw aiokafka loops.

Publishes the same N orders (~200 bytes each on the wire) to a fresh
8-partition topic three times on one broker: with our producer, with a raw
aiokafka `send()` loop and with a raw `create_batch`/`send_batch` loop. All
three produce the same wire format from the same pydantic events (the raw
loops call our codec, as a hand-written app must serialise too), with
acks=all and idempotence, so the difference is the producer path alone.

Prints events/s, MB/s and p50/p99 acknowledgement latency per variant, then
one JSON line: {"ours": E, "raw_send": E, "raw_send_batch": E, ...}.

Run: .venv/bin/python bench/producer.py [--events 500000]
(starts a private broker unless KAFKA_BOOTSTRAP is set)
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import os
import random
import resource
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from aiokafka import AIOKafkaProducer

from bench.peers.environment import versions_of_every_contestant
from pipeline.dev.localkafka import ephemeral_kafka
from pipeline.kafka.connect import connect
from pipeline.kafka.partitioner import kafka_partition
from pipeline.ops.topics import ensure_topics
from pipeline.publishing.producer import EventProducer
from pipeline.runtime.gc_tuning import tune_for_throughput
from pipeline.settings import PipelineSettings
from pipeline.wire.codec import EncodedEvent, encode_event, encode_events
from topics import ORDERS
from topics.models import Order, OrderLine

PARTITIONS = 8
CHUNK = int(os.environ.get("BENCH_CHUNK", "2000"))
RAW_CHUNK = int(os.environ.get("BENCH_RAW_CHUNK", "5000"))
BATCH_BYTES = 512 * 1024


def make_orders(count: int) -> list[Order]:
    rng = random.Random(7)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    return [
        Order(
            order_id=f"ord-{i:09d}",
            customer_id=f"cust-{rng.randrange(50_000):06d}",
            amount=Decimal(rng.randrange(100, 100_000)) / 100,
            currency=rng.choice(["EUR", "USD", "GBP"]),
            country=rng.choice(["DE", "FR", "US", "GB", "PL"]),
            placed_at=start + timedelta(seconds=i),
            lines=[
                OrderLine(sku=f"sku-{rng.randrange(5000)}", quantity=1, unit_price=Decimal("9.99"))
            ],
        )
        for i in range(count)
    ]


@dataclasses.dataclass
class Result:
    name: str
    events: int
    seconds: float
    payload_bytes: int
    latencies_ms: list[float]

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0

    def line(self) -> str:
        return (
            f"{self.name:16s} {self.events_per_s:>10,.0f} events/s "
            f"{self.payload_bytes / self.seconds / 1e6:>7.1f} MB/s  "
            f"ack p50 {self.percentile(0.5):7.1f} ms  p99 {self.percentile(0.99):7.1f} ms"
        )


def _record_latency(latencies: list[float], sent_at: float, count: int) -> Callable[[object], None]:
    """A done-callback that books one latency per record of a batch or chunk."""

    def record(_: object) -> None:
        latencies.extend([(time.perf_counter() - sent_at) * 1000] * count)

    return record


def raw_client(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        max_batch_size=BATCH_BYTES,
        max_request_size=4 * 1024 * 1024,
        linger_ms=5,
    )


async def run_ours(settings: PipelineSettings, topic: str, orders: list[Order]) -> Result:
    spec = dataclasses.replace(ORDERS, name=topic, partitions=PARTITIONS)
    latencies: list[float] = []
    async with EventProducer(settings) as producer:
        await producer.publish_many(spec, orders[:100])  # metadata, connections
        started = time.perf_counter()
        pending = []
        for offset in range(0, len(orders), CHUNK):
            chunk = orders[offset : offset + CHUNK]
            submitted = time.perf_counter()
            future = await producer.submit_many(spec, chunk)
            future.add_done_callback(_record_latency(latencies, submitted, len(chunk)))
            pending.append(future)
        for future in pending:
            await future
        seconds = time.perf_counter() - started
    size = sum(len(encode_event(spec, o).value) for o in orders[:1000]) / 1000 * len(orders)
    return Result("ours", len(orders), seconds, int(size), latencies)


async def run_raw_send(bootstrap: str, topic: str, encoded: list[EncodedEvent]) -> Result:
    client = raw_client(bootstrap)
    await client.start()
    latencies: list[float] = []
    try:
        await (await client.send(topic, value=encoded[0].value, key=encoded[0].key))
        started = time.perf_counter()
        futures = []
        for event in encoded:
            sent_at = time.perf_counter()
            future = await client.send(
                topic, value=event.value, key=event.key, headers=event.headers
            )
            future.add_done_callback(_record_latency(latencies, sent_at, 1))
            futures.append(future)
        await asyncio.gather(*futures)
        seconds = time.perf_counter() - started
    finally:
        await client.stop()
    size = sum(len(e.value) for e in encoded)
    return Result("raw_send", len(encoded), seconds, size, latencies)


async def run_raw_send_batch(bootstrap: str, topic: str, encoded: list[EncodedEvent]) -> Result:
    client = raw_client(bootstrap)
    await client.start()
    latencies: list[float] = []
    try:
        partitions = len(await client.partitions_for(topic))
        started = time.perf_counter()
        futures = []
        by_partition: dict[int, list[EncodedEvent]] = {}
        for event in encoded:
            by_partition.setdefault(kafka_partition(event.key, partitions), []).append(event)
        # Interleave partitions chunk by chunk, as a streaming loop would.
        rounds = -(-len(encoded) // RAW_CHUNK)
        for round_index in range(rounds):
            for partition, events in by_partition.items():
                share = events[
                    round_index * len(events) // rounds : (round_index + 1) * len(events) // rounds
                ]
                if not share:
                    continue
                batch = client.create_batch()
                count = 0
                for event in share:
                    if (
                        batch.append(
                            key=event.key, value=event.value, timestamp=None, headers=event.headers
                        )
                        is None
                    ):
                        futures.append(
                            await _send(client, batch, topic, partition, count, latencies)
                        )
                        batch = client.create_batch()
                        count = 0
                        batch.append(
                            key=event.key, value=event.value, timestamp=None, headers=event.headers
                        )
                    count += 1
                futures.append(await _send(client, batch, topic, partition, count, latencies))
        await asyncio.gather(*futures)
        seconds = time.perf_counter() - started
    finally:
        await client.stop()
    size = sum(len(e.value) for e in encoded)
    return Result("raw_send_batch", len(encoded), seconds, size, latencies)


async def _send(
    client: AIOKafkaProducer,
    batch: object,
    topic: str,
    partition: int,
    count: int,
    latencies: list[float],
) -> asyncio.Future[object]:
    sent_at = time.perf_counter()
    future = await client.send_batch(batch, topic, partition=partition)
    future.add_done_callback(_record_latency(latencies, sent_at, count))
    return future


async def main_async(bootstrap: str, count: int) -> dict[str, float]:
    settings = PipelineSettings(bootstrap_servers=bootstrap)
    settings.producer.batch_bytes = BATCH_BYTES
    run_id = uuid.uuid4().hex[:8]
    variants = ("warmup", "ours", "send", "batch")
    names = {variant: f"bench.producer.{run_id}.{variant}" for variant in variants}
    await ensure_topics(
        connect(settings),
        [
            dataclasses.replace(ORDERS, name=name, partitions=PARTITIONS, replication_factor=1)
            for name in names.values()
        ],
    )
    print(f"generating {count:,} orders", file=sys.stderr)
    orders = make_orders(count)
    # Every variant runs under the collector settings our processes use
    # (pipeline/runtime/gc_tuning.py); half a million live models are frozen out of
    # collections, as a real publisher holds one chunk at a time.
    tune_for_throughput()
    spec = dataclasses.replace(ORDERS, name=names["send"], partitions=PARTITIONS)
    # The raw loops encode up front; this pass is timed and added to their
    # figures so every variant pays for serialisation once.
    t0 = time.perf_counter()
    encoded = encode_events(spec, orders)
    encode_seconds = time.perf_counter() - t0
    # The raw loops' pre-encoded records must not make the garbage collector
    # walk three million extra objects while the others run.
    gc.collect()
    gc.freeze()
    print(
        f"encoding takes {encode_seconds:.2f}s ({count / encode_seconds:,.0f}/s); "
        "added to the raw loops' time",
        file=sys.stderr,
    )

    # The broker's first 100k records are slower (JIT, new segments): whoever
    # ran first paid for it. Warm it up untimed.
    await run_ours(settings, names["warmup"], orders[:100_000])
    results: list[Result] = []
    steps: list[tuple[str, Callable[[], Awaitable[Result]]]] = [
        ("raw_send_batch", lambda: run_raw_send_batch(bootstrap, names["batch"], encoded)),
        ("ours", lambda: run_ours(settings, names["ours"], orders)),
        ("raw_send", lambda: run_raw_send(bootstrap, names["send"], encoded)),
    ]
    for name, step in steps:
        print(f"running {name} …", file=sys.stderr)
        result = await step()
        if name != "ours":
            result.seconds += encode_seconds
        results.append(result)
        print(result.line())
    figures: dict[str, float] = {r.name: round(r.events_per_s) for r in results}
    for r in results:
        figures[f"{r.name}_p99_ms"] = round(r.percentile(0.99), 1)
    figures["ours_vs_raw_send_batch"] = round(figures["ours"] / figures["raw_send_batch"], 3)
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=500_000)
    args = parser.parse_args()
    with ephemeral_kafka(
        brokers=1, progress=lambda m: print(f"[kafka] {m}", file=sys.stderr)
    ) as bootstrap:
        figures = asyncio.run(main_async(bootstrap, args.events))
    print(json.dumps({**figures, "clients": versions_of_every_contestant()}))


if __name__ == "__main__":
    main()
