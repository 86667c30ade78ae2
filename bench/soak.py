"""A soak: the enrichment job at 70% of its measured capacity for an hour. Does anything drift?

Measures the capacity of `--replicas` workers of the peers' enrichment job
(bench.peers.ours: the demo's enrich_orders with its customers in a local
table, no PostgreSQL) by draining a backlog, then offers 70% of it as a
steady load for `--minutes`, sampling every 10 s: each worker's RSS, each
input partition's committed offset, the lag, the rates in and out. At the
end the load stops, the group drains, and the counts are compared.

Checks (printed, and in the JSON): every worker's RSS stays within ±10% of
its value when the warm-up ends (the first tenth of the run, at least a
minute); every partition's commit advances between every two samples;
nothing lost (outputs + dead letters ≥ inputs once the group committed
the end; counts, since reading an hour of records back would take longer
than the soak). Figures go to `<out>.json` and a plot to `<out>.png`.

Run: .venv/bin/python bench/soak.py --minutes 60   (3-minute version: --minutes 3)
(starts a private broker unless KAFKA_BOOTSTRAP is set; the plot needs the bench extra)
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import itertools

from bench.peers.environment import versions_of_every_contestant
from bench.peers.launch import ROOT, job_env, worker_command
from bench.pipeline_peers import build_customer_db, fill_input, proc_status_mb
from pipeline.dev.localkafka import ephemeral_kafka
from pipeline.dev.processes import free_ports
from pipeline.kafka.connect import connect
from pipeline.ops.topics import ensure_topics
from pipeline.publishing.producer import EventProducer
from pipeline.reading.offsets import committed_offsets, end_offsets
from pipeline.settings import PipelineSettings
from producers.loadgen import OrderGenerator
from topics import ORDERS, ORDERS_ENRICHED

SAMPLE_S = 10.0
RSS_BAND = 0.10
CUSTOMERS = 20_000
TEMPLATES = 10_000


class Workers:
    def __init__(self, count: int, bootstrap: str, env: dict[str, str], log_dir: Path) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []
        for index in range(count):
            log = open(log_dir / f"worker-{index + 1}.log", "ab")  # noqa: SIM115 - the child's
            port = free_ports(1)[0]
            self.processes.append(
                subprocess.Popen(
                    worker_command(
                        bootstrap, "--replica-id", f"soak-{index + 1}", "--health-port", str(port)
                    ),
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )

    def check_running(self) -> None:
        for index, process in enumerate(self.processes):
            if process.poll() is not None:
                raise RuntimeError(f"worker {index + 1} exited with {process.returncode}")

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


async def total(settings: PipelineSettings, topic: str) -> int:
    return sum((await end_offsets(connect(settings), topic)).values())


async def measure_capacity(
    settings: PipelineSettings, args: argparse.Namespace, db: Path, bootstrap: str, logs: Path
) -> float:
    """Events/s the workers drain a backlog at (from 10% to 90% of it)."""
    run = uuid.uuid4().hex[:6]
    source = dataclasses.replace(ORDERS.with_name(f"soak.cap.{run}.in"), replication_factor=1)
    output = dataclasses.replace(
        ORDERS_ENRICHED.with_name(f"soak.cap.{run}.out"), replication_factor=1
    )
    await ensure_topics(connect(settings), [source, source.dlq_spec(), output])
    await fill_input(settings, source.name, args.capacity_events)
    env = job_env(db, source.name, output.name, f"soak-cap-{run}")
    workers = Workers(args.replicas, bootstrap, env, logs)
    marks: dict[str, float] = {}
    try:
        while (done := await total(settings, output.name)) < args.capacity_events:
            workers.check_running()
            now = time.monotonic()
            if done >= 0.1 * args.capacity_events:
                marks.setdefault("low", now)
                marks.setdefault("low_n", done)
            if done >= 0.9 * args.capacity_events:
                marks.setdefault("high", now)
                marks.setdefault("high_n", done)
            await asyncio.sleep(0.2)
    finally:
        workers.stop()
    if "high" not in marks or marks["high"] <= marks["low"]:
        raise RuntimeError("the backlog drained too fast to measure: raise --capacity-events")
    return (marks["high_n"] - marks["low_n"]) / (marks["high"] - marks["low"])


async def steady_load(
    settings: PipelineSettings, topic: str, rate: float, stop: asyncio.Event
) -> None:
    spec = ORDERS.with_name(topic)
    # Generated once and cycled (each publish gets a new event id): making orders costs
    # more CPU than publishing them, and would hold the load below its rate.
    templates = OrderGenerator(CUSTOMERS, seed=7).batch(TEMPLATES)
    tick = 0.1
    async with EventProducer(settings) as producer:
        started = time.monotonic()
        sent = 0
        pending: list[asyncio.Future[Any]] = []
        while not stop.is_set():
            due = min(int(rate * (time.monotonic() - started)) - sent, TEMPLATES)
            if due > 0:
                first = sent % TEMPLATES
                chunk = (templates + templates)[first : first + due]
                pending.append(await producer.submit_many(spec, chunk))
                sent += due
            while pending and pending[0].done():
                pending.pop(0).result()
            await asyncio.sleep(tick)
        for future in pending:
            await future


async def soak(
    settings: PipelineSettings, args: argparse.Namespace, db: Path, bootstrap: str, logs: Path
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    capacity = await measure_capacity(settings, args, db, bootstrap, logs)
    rate = args.load_share * capacity
    print(f"capacity {capacity:,.0f} events/s; soaking at {rate:,.0f}/s", file=sys.stderr)
    run = uuid.uuid4().hex[:6]
    source = dataclasses.replace(ORDERS.with_name(f"soak.{run}.in"), replication_factor=1)
    output = dataclasses.replace(ORDERS_ENRICHED.with_name(f"soak.{run}.out"), replication_factor=1)
    group = f"soak-{run}"
    await ensure_topics(connect(settings), [source, source.dlq_spec(), output])
    workers = Workers(args.replicas, bootstrap, job_env(db, source.name, output.name, group), logs)
    stop = asyncio.Event()
    load = asyncio.ensure_future(steady_load(settings, source.name, rate, stop))
    samples: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        while (elapsed := time.monotonic() - started) < args.minutes * 60:
            workers.check_running()
            if load.done():
                load.result()
            ends = await end_offsets(connect(settings), source.name)
            commits = await committed_offsets(connect(settings), group, source.name)
            samples.append(
                {
                    "t_s": round(elapsed, 1),
                    "rss_mb": [round(proc_status_mb(p.pid, "VmRSS"), 1) for p in workers.processes],
                    "in": sum(ends.values()),
                    "out": await total(settings, output.name),
                    "lag": sum(max(0, e - commits.get(p, 0)) for p, e in ends.items()),
                    "commits": [commits.get(p, -1) for p in sorted(ends)],
                }
            )
            last = samples[-1]
            print(
                f"{last['t_s']:7.0f}s  in {last['in']:>10,}  lag {last['lag']:>7,}  "
                f"rss {last['rss_mb']}",
                file=sys.stderr,
            )
            await asyncio.sleep(max(0.0, started + len(samples) * SAMPLE_S - time.monotonic()))
        stop.set()
        await load
        inputs = await total(settings, source.name)
        drain_deadline = time.monotonic() + 300
        while True:
            commits = await committed_offsets(connect(settings), group, source.name)
            ends = await end_offsets(connect(settings), source.name)
            if all(commits.get(p, 0) >= e for p, e in ends.items()):
                break
            if time.monotonic() > drain_deadline:
                raise RuntimeError("the group did not drain within 300 s after the load")
            await asyncio.sleep(1)
    finally:
        stop.set()
        workers.stop()
    outputs = await total(settings, output.name)
    dead = await total(settings, source.dlq_name)
    return judge(samples, capacity, rate, inputs, outputs, dead, args), samples


def judge(
    samples: list[dict[str, Any]],
    capacity: float,
    rate: float,
    inputs: int,
    outputs: int,
    dead: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    warm_up_s = max(60.0, args.minutes * 6)  # a tenth of the run, at least a minute
    after = [s for s in samples if s["t_s"] >= warm_up_s]
    baseline = after[0]["rss_mb"] if after else samples[-1]["rss_mb"]
    drift = [
        max(abs(s["rss_mb"][i] - base) / base for s in after) if base and after else 0.0
        for i, base in enumerate(baseline)
    ]
    stalls = []
    for before, now in itertools.pairwise(after):
        for partition, (a, b) in enumerate(zip(before["commits"], now["commits"], strict=True)):
            if b <= a:
                stalls.append(f"partition {partition} at {now['t_s']:.0f}s")
    return {
        "minutes": args.minutes,
        "replicas": args.replicas,
        "capacity_eps": round(capacity),
        "load_eps": round(rate),
        "inputs": inputs,
        "outputs": outputs,
        "dead_letters": dead,
        "lost": max(0, inputs - outputs - dead),
        "rss_baseline_mb": baseline,
        "rss_max_drift": [round(d, 3) for d in drift],
        "rss_within_band": all(d <= RSS_BAND for d in drift),
        "commit_stalls": len(stalls),
        "commit_stall_examples": stalls[:5],
        "max_lag": max(s["lag"] for s in samples),
        "samples": len(samples),
    }


def plot(samples_path: Path, figures: dict[str, Any], samples: list[dict[str, Any]]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s["t_s"] / 60 for s in samples]
    figure, (rss_axis, lag_axis) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for index in range(len(samples[0]["rss_mb"])):
        rss_axis.plot(minutes, [s["rss_mb"][index] for s in samples], label=f"worker {index + 1}")
    rss_axis.set_ylabel("RSS (MB)")
    rss_axis.legend()
    rss_axis.set_title(
        f"soak: {figures['load_eps']:,} events/s (70% of {figures['capacity_eps']:,}), "
        f"{figures['replicas']} workers, {figures['minutes']} min"
    )
    lag_axis.plot(minutes, [s["lag"] for s in samples], color="tab:red")
    lag_axis.set_ylabel("lag (records)")
    lag_axis.set_xlabel("minutes")
    png = samples_path.with_suffix(".png")
    figure.tight_layout()
    figure.savefig(png, dpi=90)
    return png


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--load-share", type=float, default=0.7)
    parser.add_argument("--capacity-events", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=Path("bench/results/soak"))
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with (
        ephemeral_kafka(progress=lambda m: print(f"[kafka] {m}", file=sys.stderr)) as bootstrap,
        tempfile.TemporaryDirectory(prefix="soak-") as folder,
    ):
        settings = PipelineSettings(bootstrap_servers=bootstrap)
        db = Path(folder) / "customers"
        build_customer_db(db)
        logs = Path(os.environ.get("SOAK_LOG_DIR", folder))
        figures, samples = asyncio.run(soak(settings, args, db, bootstrap, logs))
    json_path = args.out.with_suffix(".json")
    json_path.write_text(json.dumps({"figures": figures, "samples": samples}, indent=1))
    try:
        png = plot(json_path, figures, samples)
        print(f"plot: {png}", file=sys.stderr)
    except ImportError:
        print("no plot: pip install -e '.[bench]' for matplotlib", file=sys.stderr)
    print(json.dumps({**figures, "clients": versions_of_every_contestant()}))


if __name__ == "__main__":
    main()
