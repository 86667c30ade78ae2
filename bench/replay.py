"""Does a rate-limited replay leave the live pipeline alone?

A live worker (the peers' enrichment job) handles orders published at a
steady rate; its end-to-end latency (publish to output appended, the output
topic using LogAppendTime) is measured for --seconds, then measured again
while `pipeline replay` re-runs the same processor over a 200k-order
history of the topic at --replay-rate, into a topic of its own. Same broker,
same two cores.

Prints the figures and, last, {"live_p99_ms": A, "live_p99_with_replay_ms": B,
"replay_events_per_s": R}. Target: B ≤ 1.5 × A.

Run: .venv/bin/python bench/replay.py [--seconds 20 --rate 2000 --replay-rate 5000]
(starts a private broker unless KAFKA_BOOTSTRAP is set)
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from bench.latency import log_append_time, wait_for
from bench.peers.environment import versions_of_every_contestant
from bench.peers.launch import PIPELINE, ROOT, job_env, worker_command
from bench.pipeline_peers import build_customer_db
from pipeline.catalogue import TopicSpec
from pipeline.dev.localkafka import ephemeral_kafka
from pipeline.kafka.connect import connect
from pipeline.ops.topics import ensure_topics
from pipeline.publishing.producer import EventProducer
from pipeline.reading.reader import read_all
from pipeline.resilience.ratelimit import TokenBucket
from pipeline.settings import PipelineSettings
from pipeline.wire.codec import decode_value
from producers.loadgen import OrderGenerator
from topics import ORDERS, ORDERS_ENRICHED
from topics.models import EnrichedOrder

HISTORY = 200_000


def p99(values: list[int]) -> int:
    ordered = sorted(values)
    return ordered[int(len(ordered) * 0.99)] if ordered else 0


async def steady_load(
    settings: PipelineSettings,
    topic: TopicSpec,
    generator: OrderGenerator,
    rate: float,
    seconds: float,
    published_at: dict[str, int],
) -> int:
    chunk = max(1, int(rate / 200))
    pending = [generator.batch(chunk) for _ in range(int(rate * seconds / chunk) + 1)]
    bucket = TokenBucket(rate)
    async with EventProducer(settings) as producer:
        for orders in pending:
            await bucket.acquire(chunk)
            now_ms = time.time_ns() // 1_000_000
            for order in orders:
                published_at[order.order_id] = now_ms
            await producer.publish_many(topic, orders)
    return len(pending) * chunk


async def latencies(
    settings: PipelineSettings, topic: str, published_at: dict[str, int]
) -> list[int]:
    spec = ORDERS_ENRICHED.with_name(topic)
    found = []
    for record in await read_all(connect(settings), topic):
        event = decode_value(spec, record.value)
        assert isinstance(event, EnrichedOrder)
        sent = published_at.get(event.order_id)
        if sent is not None:
            found.append(record.timestamp - sent)
    return found


async def measure(bootstrap: str, args: argparse.Namespace, folder: Path) -> dict[str, float]:
    settings = PipelineSettings(bootstrap_servers=bootstrap)
    run = uuid.uuid4().hex[:8]
    source = dataclasses.replace(ORDERS.with_name(f"replaybench.{run}.in"), replication_factor=1)
    live_out = dataclasses.replace(
        ORDERS_ENRICHED.with_name(f"replaybench.{run}.out"), replication_factor=1
    )
    replay_out = live_out.with_name(f"replaybench.{run}.backfill")
    await ensure_topics(connect(settings), [source, source.dlq_spec(), live_out, replay_out])
    await log_append_time(settings, live_out)
    db_path = folder / "customers"
    build_customer_db(db_path)
    generator = OrderGenerator(20_000)
    print(f"history of {HISTORY:,} orders …", file=sys.stderr)
    async with EventProducer(settings) as producer:
        for _ in range(0, HISTORY, 10_000):
            await producer.publish_many(source, generator.batch(10_000))
    history_end = datetime.now(UTC).isoformat()
    live = subprocess.Popen(  # noqa: ASYNC220 - starts at once
        worker_command(bootstrap),
        cwd=ROOT,
        env=job_env(db_path, source.name, live_out.name, f"live-{run}"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    figures: dict[str, float] = {}
    try:
        await wait_for(settings, live_out.name, HISTORY, 180)  # the live group caught up
        baseline: dict[str, int] = {}
        await steady_load(settings, source, generator, args.rate, args.seconds, baseline)
        figures["live_p99_ms"] = p99(await latencies(settings, live_out.name, baseline))
        print(f"live p99 alone: {figures['live_p99_ms']} ms", file=sys.stderr)

        replay = subprocess.Popen(  # noqa: ASYNC220 - starts at once
            [
                PIPELINE,
                "replay",
                "--processor",
                "enrich",
                "--to",
                history_end,
                "--rate",
                str(args.replay_rate),
                "--name",
                f"bench-{run}",
                "--bootstrap",
                bootstrap,
            ],
            cwd=ROOT,
            env=job_env(
                db_path,
                source.name,
                replay_out.name,
                f"live-{run}",
                PIPELINE_PROCESSORS_MODULE="bench.peers.ours",
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started = time.monotonic()
        await asyncio.sleep(3)  # the replay is up and running at its rate
        during: dict[str, int] = {}
        await steady_load(settings, source, generator, args.rate, args.seconds, during)
        replay.send_signal(signal.SIGINT)
        out, err = replay.communicate(timeout=120)
        elapsed = time.monotonic() - started
        read = re.search(r"│\s*([\d,]+)\s*│", out)
        replayed = int(read.group(1).replace(",", "")) if read else 0
        figures["live_p99_with_replay_ms"] = p99(await latencies(settings, live_out.name, during))
        figures["replay_events_per_s"] = round(replayed / elapsed)
        print(
            f"live p99 during the replay: {figures['live_p99_with_replay_ms']} ms; the replay "
            f"handled {replayed:,} records in {elapsed:.0f}s",
            file=sys.stderr,
        )
        if not replayed:
            print(f"replay output:\n{out}\n{err[-2000:]}", file=sys.stderr)
    finally:
        live.send_signal(signal.SIGTERM)
        live.wait(timeout=60)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rate", type=float, default=2000, help="live orders/s")
    parser.add_argument("--replay-rate", type=float, default=5000)
    args = parser.parse_args()
    with (
        ephemeral_kafka(progress=lambda m: print(f"[kafka] {m}", file=sys.stderr)) as bootstrap,
        tempfile.TemporaryDirectory(prefix="bench-replay-") as folder,
    ):
        figures = asyncio.run(measure(bootstrap, args, Path(folder)))
    figures["ratio"] = round(figures["live_p99_with_replay_ms"] / max(1, figures["live_p99_ms"]), 2)
    print(json.dumps({**figures, "clients": versions_of_every_contestant()}))


if __name__ == "__main__":
    main()
