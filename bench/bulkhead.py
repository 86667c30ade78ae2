"""Does a slow partition slow only itself? Ours against quixstreams.

12 partitions of orders; the handler for one partition's events is slowed
50× (it waits 50 times the per-event cost of the job, as for a slow
dependency). For each framework the other 11 partitions' throughput is
measured with and without the slow partition; the figure is their ratio
(1.0: the slow partition cost the others nothing).

Prints per-run figures and, last, {"ours": F, "quixstreams": F}.

Run: .venv/bin/python bench/bulkhead.py [--events 100000]
(needs the bench extras; starts a private broker unless KAFKA_BOOTSTRAP is set)
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.peers.environment import peer_python, versions_of_every_contestant
from bench.peers.launch import ROOT, worker_command
from bench.pipeline_peers import build_customer_db, fill_input
from pipeline.dev.localkafka import ephemeral_kafka
from pipeline.kafka.aiokafka.config import client_kwargs
from pipeline.kafka.connect import connect
from pipeline.ops.topics import ensure_topics
from pipeline.reading.offsets import end_offsets
from pipeline.settings import PipelineSettings
from topics import ORDERS, ORDERS_ENRICHED

PARTITIONS = 12
SLOW_PARTITION = 0
PER_EVENT_COST_S = 30e-6  # the job's measured cost per event (bench/pipeline_peers.py)
SLOWDOWN = 50


async def others_rate(
    command: list[str], env: dict[str, str], settings: PipelineSettings, source: str, output: str
) -> float:
    """Events/s of the non-slow partitions, from start to all of them done."""
    targets = await end_offsets(connect(settings), source)
    others = {p: n for p, n in targets.items() if p != SLOW_PARTITION}
    expected = sum(others.values())
    sampler = AIOKafkaConsumer(**client_kwargs(settings), enable_auto_commit=False)
    partitions = [TopicPartition(output, p) for p in others]
    process = subprocess.Popen(  # noqa: ASYNC220 - starts at once
        command,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await sampler.start()
        sampler.assign(partitions)
        first_output_at = None
        while True:
            done = sum((await sampler.end_offsets(partitions)).values())
            now = time.monotonic()
            if done and first_output_at is None:
                first_output_at = now
            if done >= expected:
                return expected / (now - (first_output_at or now) + 1e-9)
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited with {process.returncode}")
            await asyncio.sleep(0.05)
    finally:
        await sampler.stop()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument(
        "--worker-args",
        default="",
        help="extra `pipeline worker` flags, e.g. '--max-in-flight-records 20000'",
    )
    parser.add_argument(
        "--only",
        choices=("ours", "quixstreams"),
        help="run one framework (no JSON ratio for the other)",
    )
    args = parser.parse_args()
    slow_s = PER_EVENT_COST_S * SLOWDOWN
    with (
        ephemeral_kafka(progress=lambda m: print(f"[kafka] {m}", file=sys.stderr)) as bootstrap,
        tempfile.TemporaryDirectory(prefix="bulkhead-") as folder,
    ):
        settings = PipelineSettings(bootstrap_servers=bootstrap)
        run = uuid.uuid4().hex[:8]
        source = f"bulkhead.{run}.in"
        frameworks = (args.only,) if args.only else ("ours", "quixstreams")
        runs = [(fw, slow) for fw in frameworks for slow in (False, True)]
        outputs = {r: f"bulkhead.{run}.out.{r[0]}.{'slow' if r[1] else 'base'}" for r in runs}
        specs = [ORDERS.with_name(source)] + [
            ORDERS_ENRICHED.with_name(o) for o in outputs.values()
        ]
        specs = [dataclasses.replace(s, replication_factor=1, partitions=PARTITIONS) for s in specs]
        specs.append(specs[0].dlq_spec())
        asyncio.run(ensure_topics(connect(settings), specs))
        db_path = Path(folder) / "customers"
        build_customer_db(db_path)
        asyncio.run(fill_input(settings, source, args.events))
        rates: dict[tuple[str, bool], float] = {}
        for framework, slow in runs:
            output = outputs[(framework, slow)]
            group = f"bulkhead-{framework}-{'slow' if slow else 'base'}-{run}"
            env = {
                "PEERS_BOOTSTRAP": bootstrap,
                "PEERS_DB": str(db_path),
                "PEERS_INPUT": source,
                "PEERS_OUTPUT": output,
                "PEERS_GROUP": group,
                "PEERS_PARTITIONS": str(PARTITIONS),
                "PEERS_SLOW_PARTITION": str(SLOW_PARTITION if slow else -1),
                "PEERS_SLOW_S": str(slow_s if slow else 0),
                "PYTHONPATH": str(ROOT),
            }
            if framework == "ours":
                command = worker_command(bootstrap, *args.worker_args.split())
            else:
                quix = [peer_python(), "-m", "bench.peers.quix"]
                command = [*quix, source, output, group, str(10**9)]
            rate = asyncio.run(others_rate(command, env, settings, source, output))
            rates[(framework, slow)] = rate
            label = "slowed" if slow else "baseline"
            print(f"{framework:12s} {label:9s} other partitions: {rate:>9,.0f} events/s")
    figures = {
        framework: round(rates[(framework, True)] / rates[(framework, False)], 3)
        for framework in frameworks
    }
    print(json.dumps({**figures, "clients": versions_of_every_contestant()}))


if __name__ == "__main__":
    main()
