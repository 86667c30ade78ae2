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

--breakdown: also where the time goes inside the worker, from its own
`pipeline_record_stage_seconds` histograms (pipeline.runtime.stage_times,
one record in 16) over the measured seconds: p50 and p99 of each stage
(fetched, queued, handled, acknowledged, committed) and of their sum,
read from the histogram's buckets (so to a bucket's resolution: 0.5, 1,
2.5, 5, 10, 25, 50 ms ...). The end-to-end figure above stops at the
output's append; the worker's own stops at the commit.

Run: .venv/bin/python bench/latency.py [--seconds 20] [--warmup 5] [--client confluent]
         [--breakdown]
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
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from bench.peers.environment import versions_of_every_contestant
from bench.peers.launch import ROOT, job_env, worker_command
from bench.pipeline_peers import build_customer_db
from pipeline.catalogue import TopicSpec
from pipeline.dev.localkafka import ephemeral_kafka
from pipeline.dev.processes import free_ports
from pipeline.kafka.connect import connect
from pipeline.ops.topics import TopicsOnCluster, ensure_topics
from pipeline.publishing.producer import EventProducer
from pipeline.reading.offsets import end_offsets
from pipeline.reading.reader import read_all
from pipeline.resilience.ratelimit import TokenBucket
from pipeline.runtime.stage_times import END_TO_END, STAGES
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


def stage_histograms(port: int) -> dict[str, dict[float, float]]:
    """stage → {bucket upper bound: cumulative count} from the worker's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    found: dict[str, dict[float, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "pipeline_record_stage_seconds_bucket":
                bound = float(sample.labels["le"])
                found.setdefault(sample.labels["stage"], {})[bound] = sample.value
    return found


def quantile(buckets: dict[float, float], q: float) -> float | None:
    """The q-quantile of a histogram's cumulative buckets, interpolated within its bucket."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0
    if not total:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower
            share = (rank - below) / (count - below) if count > below else 0.0
            return lower + (bound - lower) * share
        lower, below = bound, count
    return lower


def breakdown(
    before: dict[str, dict[float, float]], after: dict[str, dict[float, float]]
) -> dict[str, dict[str, float | None]]:
    """p50 and p99 (ms) per stage over what the worker timed between two scrapes."""
    figures: dict[str, dict[str, float | None]] = {}
    for stage, buckets in after.items():
        delta = {b: n - before.get(stage, {}).get(b, 0.0) for b, n in buckets.items()}
        figures[stage] = {
            f"p{round(q * 100)}_ms": None if (v := quantile(delta, q)) is None else v * 1000
            for q in (0.5, 0.99)
        }
        figures[stage]["timed"] = max(delta.values(), default=0.0)
    return figures


async def measure(
    bootstrap: str,
    seconds: float,
    warmup_s: float,
    folder: Path,
    client: str = "aiokafka",
    health_port: int | None = None,
) -> dict[str, Any]:
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
    ports = ("--health-port", str(health_port)) if health_port else ()
    worker = subprocess.Popen(  # noqa: ASYNC220 - starts at once
        worker_command(bootstrap, "--client", client, *ports),
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
            stages_before: dict[str, dict[float, float]] | None = None
            for index, orders in enumerate(pending):
                await bucket.acquire(chunk)
                if index == warmup_chunks and health_port:
                    stages_before = stage_histograms(health_port)
                if index >= warmup_chunks:
                    now_ms = time.time_ns() // 1_000_000
                    for order in orders:
                        published_at[order.order_id] = now_ms
                await producer.publish_many(source, orders)
                sent += chunk
        await wait_for(settings, output.name, 100 + BURST + sent, 120)
        stages = None
        if health_port and stages_before is not None:
            await asyncio.sleep(1.5)  # the last commits (every second) of what was measured
            stages = breakdown(stages_before, stage_histograms(health_port))
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
        "stages": stages,
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
    parser.add_argument(
        "--breakdown", action="store_true", help="p50/p99 per stage inside the worker"
    )
    args = parser.parse_args()
    health_port = free_ports(1)[0] if args.breakdown else None
    with (
        ephemeral_kafka(progress=lambda m: print(f"[kafka] {m}", file=sys.stderr)) as bootstrap,
        tempfile.TemporaryDirectory(prefix="latency-") as folder,
    ):
        figures = asyncio.run(
            measure(bootstrap, args.seconds, args.warmup, Path(folder), args.client, health_port)
        )
    print(
        f"{figures['events']:,} orders at {figures['rate']:,}/s "
        f"(half of {figures['max_rate']:,}/s): "
        f"p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms"
    )
    stages = figures["stages"]
    if stages:
        print("inside the worker (one record in 16, to a bucket's resolution):")
        for stage in (*STAGES, END_TO_END):
            found = stages.get(stage, {})
            p50, p99 = found.get("p50_ms"), found.get("p99_ms")
            print(
                f"  {stage:13s} p50 {'-' if p50 is None else f'{p50:7.2f}'} ms   "
                f"p99 {'-' if p99 is None else f'{p99:7.2f}'} ms"
            )
    print(
        json.dumps(
            {
                **{k: figures[k] for k in ("rate", "p50_ms", "p99_ms")},
                **({"stages": stages} if stages else {}),
                "clients": versions_of_every_contestant(),
            }
        )
    )


if __name__ == "__main__":
    main()
