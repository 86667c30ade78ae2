"""End-to-end latency of one worker at half its measured maximum rate.

Latency: from the moment an order is published (its `produced-at` header)
to the moment its enriched output is appended by the broker (the output
topic uses LogAppendTime, so the record's timestamp is the broker's). First
a burst measures the worker's maximum rate; then orders are published at
half of it, evenly (the rate limiter allows no burst beyond one 5 ms chunk),
for --warmup seconds that are not measured and then for --seconds, over
which p50/p99 are taken. The warm-up keeps the first seconds of a broker
this bench has just started (a cold JVM) out of the figures; --warmup 0
puts them back in.

Prints the figures and, last, {"rate": R, "p50_ms": X, "p99_ms": Y}.

Run: .venv/bin/python bench/latency.py [--seconds 20] [--warmup 5] [--client confluent]
(starts a private broker unless KAFKA_BOOTSTRAP is set)
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from bench.peers.environment import versions_of_every_contestant
from bench.peers.launch import ROOT, job_env, worker_command
from bench.pipeline_peers import build_customer_db
from pipeline.catalogue import TopicSpec
from pipeline.dev.localkafka import ephemeral_kafka
from pipeline.kafka.connect import connect
from pipeline.ops.topics import TopicsOnCluster, ensure_topics
from pipeline.publishing.producer import EventProducer
from pipeline.reading.offsets import end_offsets
from pipeline.reading.reader import read_all
from pipeline.resilience.ratelimit import TokenBucket
from pipeline.settings import PipelineSettings
from pipeline.wire.codec import decode_value
from producers.loadgen import OrderGenerator
from topics import ORDERS, ORDERS_ENRICHED
from topics.models import EnrichedOrder

BURST = 60_000


async def output_count(settings: PipelineSettings, topic: str) -> int:
    return sum((await end_offsets(connect(settings), topic)).values())


async def wait_for(settings: PipelineSettings, topic: str, count: int, timeout_s: float) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await output_count(settings, topic) >= count:
            return time.monotonic()
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{topic} did not reach {count} records in {timeout_s}s")


async def log_append_time(settings: PipelineSettings, spec: TopicSpec) -> None:
    """Output records stamped by the broker on append: their timestamp ends the latency."""
    async with TopicsOnCluster(connect(settings)) as topics:
        await topics.admin.set_topic_configs(
            {spec.name: {"message.timestamp.type": "LogAppendTime"}}
        )


async def measure(
    bootstrap: str, seconds: float, warmup_s: float, folder: Path, client: str = "aiokafka"
) -> dict[str, float]:
    settings = PipelineSettings(bootstrap_servers=bootstrap)
    run = uuid.uuid4().hex[:8]
    source = ORDERS.with_name(f"latency.{run}.in")
    output = ORDERS_ENRICHED.with_name(f"latency.{run}.out")
    specs = [dataclasses.replace(s, replication_factor=1) for s in (source, output)]
    await ensure_topics(connect(settings), [*specs, specs[0].dlq_spec()])
    await log_append_time(settings, output)
    db_path = folder / "customers"
    build_customer_db(db_path)
    env = job_env(db_path, source.name, output.name, f"latency-{run}")
    worker = subprocess.Popen(  # noqa: ASYNC220 - starts at once
        worker_command(bootstrap, "--client", client),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    generator = OrderGenerator(20_000)
    published_at: dict[str, int] = {}
    try:
        async with EventProducer(settings) as producer:
            # Warm-up: the worker joins its group and handles a first record.
            await producer.publish_many(source, generator.batch(100))
            await wait_for(settings, output.name, 100, 60)
            print(f"burst of {BURST:,} orders to measure the maximum rate …", file=sys.stderr)
            burst = generator.batch(BURST)
            await producer.publish_many(source, burst)
            started = time.monotonic()
            done_at = await wait_for(settings, output.name, 100 + BURST, 120)
            max_rate = BURST / (done_at - started)
            rate = max_rate / 2
            print(
                f"maximum ≈ {max_rate:,.0f}/s; now {rate:,.0f}/s for {warmup_s:.0f}s of "
                f"warm-up and {seconds:.0f}s measured",
                file=sys.stderr,
            )
            chunk = max(1, int(rate / 200))  # every 5 ms
            # Generated up front: generating them live would take a core from
            # the worker on a two-core machine and measure the generator.
            warmup_chunks = int(rate * warmup_s / chunk)
            pending = [
                generator.batch(chunk)
                for _ in range(warmup_chunks + int(rate * seconds / chunk) + 1)
            ]
            bucket = TokenBucket(rate, burst=chunk)
            sent = 0
            for index, orders in enumerate(pending):
                await bucket.acquire(chunk)
                if index >= warmup_chunks:
                    now_ms = time.time_ns() // 1_000_000
                    for order in orders:
                        published_at[order.order_id] = now_ms
                await producer.publish_many(source, orders)
                sent += chunk
        await wait_for(settings, output.name, 100 + BURST + sent, 120)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    latencies = []
    for record in await read_all(connect(settings), output.name):
        event = decode_value(output, record.value)
        assert isinstance(event, EnrichedOrder)
        sent_ms = published_at.get(event.order_id)
        if sent_ms is not None:
            latencies.append(record.timestamp - sent_ms)
    latencies.sort()
    return {
        "rate": round(rate),
        "max_rate": round(max_rate),
        "events": len(latencies),
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[int(len(latencies) * 0.99)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20, help="measured seconds")
    parser.add_argument(
        "--client", choices=("aiokafka", "confluent"), default="aiokafka", help="the worker's"
    )
    parser.add_argument(
        "--warmup", type=float, default=5, help="seconds at the same rate, not measured"
    )
    args = parser.parse_args()
    with (
        ephemeral_kafka(progress=lambda m: print(f"[kafka] {m}", file=sys.stderr)) as bootstrap,
        tempfile.TemporaryDirectory(prefix="latency-") as folder,
    ):
        figures = asyncio.run(
            measure(bootstrap, args.seconds, args.warmup, Path(folder), args.client)
        )
    print(
        f"{figures['events']:,} orders at {figures['rate']:,}/s "
        f"(half of {figures['max_rate']:,}/s): "
        f"p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms"
    )
    print(
        json.dumps(
            {
                **{k: figures[k] for k in ("rate", "p50_ms", "p99_ms")},
                "clients": versions_of_every_contestant(),
            }
        )
    )


if __name__ == "__main__":
    main()
