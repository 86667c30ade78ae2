"""Is a worker's memory bounded by configuration, not by its backlog?

Fills a topic with a backlog of 10k and of 1M orders, starts a fresh worker
(one replica, the enrichment job) on each, lets it drain the backlog and
reads its peak RSS (VmHWM). Flat means the bulkhead and in-flight bounds,
not the input, decide what a worker holds.

Prints both figures and, last, {"rss_10k_mb": A, "rss_1m_mb": B, "ratio": B/A}.

Run: .venv/bin/python bench/rss.py [--large 1000000] [--client confluent]
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
from bench.pipeline_peers import build_customer_db, peak_rss_mb
from pipeline.dev.localkafka import ephemeral_kafka
from pipeline.kafka.connect import connect
from pipeline.ops.topics import ensure_topics
from pipeline.publishing.producer import EventProducer
from pipeline.reading.offsets import end_offsets
from pipeline.settings import PipelineSettings
from producers.loadgen import OrderGenerator
from topics import ORDERS, ORDERS_ENRICHED

TEMPLATE_ORDERS = 10_000


async def fill(settings: PipelineSettings, topic: str, count: int) -> None:
    """`count` orders, cycling through 10k generated ones (each publish gets a new event id)."""
    spec = ORDERS.with_name(topic)
    templates = OrderGenerator(20_000).batch(TEMPLATE_ORDERS)
    async with EventProducer(settings) as producer:
        pending = []
        for start in range(0, count, 5000):
            offset = start % TEMPLATE_ORDERS
            chunk = templates[offset : offset + min(5000, count - start)]
            pending.append(await producer.submit_many(spec, chunk))
            if len(pending) > 8:
                await pending.pop(0)
        for future in pending:
            await future


async def drain_peak_rss(
    settings: PipelineSettings, backlog: int, db_path: Path, bootstrap: str, extra: list[str]
) -> tuple[float, float]:
    run = uuid.uuid4().hex[:8]
    source = dataclasses.replace(ORDERS.with_name(f"rss.{run}.in"), replication_factor=1)
    output = dataclasses.replace(ORDERS_ENRICHED.with_name(f"rss.{run}.out"), replication_factor=1)
    await ensure_topics(connect(settings), [source, source.dlq_spec(), output])
    print(f"backlog of {backlog:,} orders …", file=sys.stderr)
    await fill(settings, source.name, backlog)
    env = job_env(db_path, source.name, output.name, f"rss-{run}")
    worker = subprocess.Popen(  # noqa: ASYNC220 - starts at once
        worker_command(bootstrap, *extra),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started = time.monotonic()
    try:
        while sum((await end_offsets(connect(settings), output.name)).values()) < backlog:
            if worker.poll() is not None:
                raise RuntimeError(f"worker exited with {worker.returncode}")
            await asyncio.sleep(0.2)
        peak = peak_rss_mb(worker.pid)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
    return peak, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument(
        "--client", choices=("aiokafka", "confluent"), default="aiokafka", help="the worker's"
    )
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument(
        "--worker-args",
        default="",
        help="extra `pipeline worker` flags, e.g. "
        "'--max-in-flight-records 20000 --fetch-partition-bytes 262144'",
    )
    args = parser.parse_args()
    with (
        ephemeral_kafka(progress=lambda m: print(f"[kafka] {m}", file=sys.stderr)) as bootstrap,
        tempfile.TemporaryDirectory(prefix="rss-") as folder,
    ):
        settings = PipelineSettings(bootstrap_servers=bootstrap)
        db_path = Path(folder) / "customers"
        build_customer_db(db_path)
        figures = {}
        for label, backlog in (("10k", args.small), ("1m", args.large)):
            peak, seconds = asyncio.run(
                drain_peak_rss(
                    settings,
                    backlog,
                    db_path,
                    bootstrap,
                    ["--client", args.client, *args.worker_args.split()],
                )
            )
            print(f"backlog {backlog:>9,}: peak RSS {peak:6.0f} MB, drained in {seconds:5.1f}s")
            figures[f"rss_{label}_mb"] = round(peak)
    figures["ratio"] = round(figures["rss_1m_mb"] / figures["rss_10k_mb"], 3)
    print(json.dumps({**figures, "clients": versions_of_every_contestant()}))


if __name__ == "__main__":
    main()
