"""The same job on our runtime and on its peers, against one broker, in one run.

Job per event: consume → msgpack decode → pydantic validate → rocksdict
lookup → build and validate the output → encode → produce (acks=all) →
commit. Contestants, each a child process of this script, one after the
other, each with its own consumer group and output topic over the same
input topic:

- ours: `pipeline worker` (one replica, all guarantees on: bulkheads, DLQ,
  retries, commits only after acknowledged outputs), on aiokafka;
- ours_confluent: the same worker on the confluent-kafka client (`--client confluent`);
- raw_aiokafka: a hand-written getmany / send_batch / commit loop;
- quixstreams: a StreamingDataFrame with the same function;
- faust: a faust-streaming agent with the same function.

Steady-state events/s is measured from outside, on the output topic's end
offsets, between 10% and 90% of the events. Also measured: the per-event
work alone in this process, with no Kafka and no framework (`work_only`),
the ceiling any one-process contestant can approach on this machine. Prints
a table and, last, {"ours": E, "ours_confluent": E, "raw_aiokafka": E,
"quixstreams": E, "faust": E, "work_only": E, ...ratios}.

Run: .venv/bin/python bench/pipeline_peers.py [--events 200000]
         [--only ours,ours_confluent,raw_aiokafka]
(needs the bench extras: pip install -e '.[bench]'; starts a private
broker unless KAFKA_BOOTSTRAP is set)
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgpack
from aiokafka import AIOKafkaConsumer, TopicPartition
from rocksdict import Options, Rdict

from bench.peers.environment import peer_python, versions_of_every_contestant
from bench.peers.launch import ROOT, worker_command
from bench.peers.work import enrich_bytes
from pipeline.dev.localkafka import ephemeral_kafka
from pipeline.dev.processes import stop_gently
from pipeline.kafka.aiokafka.config import client_kwargs
from pipeline.kafka.connect import connect
from pipeline.ops.topics import ensure_topics
from pipeline.publishing.producer import EventProducer
from pipeline.settings import PipelineSettings
from pipeline.wire.codec import encode_events
from producers.loadgen import CustomerGenerator, OrderGenerator
from topics import ORDERS, ORDERS_ENRICHED

PYTHON = sys.executable
CUSTOMERS = 20_000


@dataclasses.dataclass
class Outcome:
    name: str
    events_per_s: float
    seconds_total: float
    peak_rss_mb: float
    note: str = ""


def build_customer_db(path: Path) -> None:
    db = Rdict(str(path), Options(raw_mode=True))
    for customer in CustomerGenerator(CUSTOMERS):
        db[customer.customer_id.encode()] = msgpack.packb(customer.model_dump(mode="json"))
    db.close()


async def fill_input(
    settings: PipelineSettings, topic: str, count: int, generator: OrderGenerator | None = None
) -> None:
    spec = ORDERS.with_name(topic)
    generator = generator or OrderGenerator(CUSTOMERS)
    async with EventProducer(settings) as producer:
        pending = []
        for start in range(0, count, 5000):
            pending.append(
                await producer.submit_many(spec, generator.batch(min(5000, count - start)))
            )
            if len(pending) > 4:
                await pending.pop(0)
        for future in pending:
            await future


def work_only_rate(db_path: Path, count: int = 20_000) -> float:
    """Events/s of the job's per-event work alone: decode to encode, no Kafka, no framework."""
    os.environ["PEERS_DB"] = str(db_path)
    values = [
        encoded.value for encoded in encode_events(ORDERS, OrderGenerator(CUSTOMERS).batch(count))
    ]
    enrich_bytes(values[0])  # opens the customer table
    started = time.perf_counter()
    for value in values:
        enrich_bytes(value)
    return count / (time.perf_counter() - started)


def peak_rss_mb(pid: int) -> float:
    return proc_status_mb(pid, "VmHWM")


def proc_status_mb(pid: int, field: str) -> float:
    """A memory figure of /proc/<pid>/status (VmHWM: peak RSS, VmRSS: now), in MB; 0 if gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


async def run_contestant(
    name: str,
    command: list[str],
    env: dict[str, str],
    settings: PipelineSettings,
    output: str,
    count: int,
    timeout_s: float,
) -> Outcome:
    print(f"running {name} …", file=sys.stderr)
    started = time.monotonic()
    log = tempfile.NamedTemporaryFile(prefix=f"peers-{name}-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(  # noqa: ASYNC220 - starts at once; the loop only samples
        command, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
    )
    samples: list[tuple[float, int]] = []
    peak = 0.0
    note = ""
    # One long-lived client for the samples: a new one per sample would cost
    # the two cores more than the contestant's own fetches.
    sampler = AIOKafkaConsumer(**client_kwargs(settings), enable_auto_commit=False)
    partitions = [TopicPartition(output, p) for p in range(ORDERS_ENRICHED.partitions)]
    try:
        await sampler.start()
        sampler.assign(partitions)
        while True:
            done = sum((await sampler.end_offsets(partitions)).values())
            now = time.monotonic()
            samples.append((now, done))
            peak = max(peak, peak_rss_mb(process.pid))
            if done >= count:
                break
            if process.poll() is not None:
                note = f"exited with {process.returncode} after {done} events (log: {log.name})"
                break
            if now - started > timeout_s:
                note = f"timed out after {done} events (log: {log.name})"
                break
            await asyncio.sleep(0.1)
    finally:
        await sampler.stop()
        stop_gently(process, timeout_s=20)
    total = samples[-1][0] - started
    low, high = 0.1 * count, 0.9 * count
    t_low = next((t for t, n in samples if n >= low), None)
    t_high = next(((t, n) for t, n in samples if n >= high), None)
    if t_low is None or t_high is None or t_high[0] <= t_low:
        rate = samples[-1][1] / total if total > 0 else 0.0
        note = note or "too fast to sample between 10% and 90%: whole-run rate"
    else:
        n_low = next(n for t, n in samples if t == t_low)
        rate = (t_high[1] - n_low) / (t_high[0] - t_low)
    log.close()
    if not note:
        os.unlink(log.name)  # kept, and named in the note, only when something went wrong
    return Outcome(name, rate, total, peak, note)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument(
        "--only",
        default="ours,ours_confluent,raw_aiokafka,quixstreams,faust",
        help="comma-separated contestants",
    )
    parser.add_argument("--timeout", type=float, default=300, help="seconds per contestant")
    args = parser.parse_args()
    chosen = args.only.split(",")
    with (
        ephemeral_kafka(progress=lambda m: print(f"[kafka] {m}", file=sys.stderr)) as bootstrap,
        tempfile.TemporaryDirectory(prefix="peers-") as folder,
    ):
        settings = PipelineSettings(bootstrap_servers=bootstrap)
        run = uuid.uuid4().hex[:8]
        source = f"peers.{run}.in"
        outputs = {name: f"peers.{run}.out.{name}" for name in chosen}
        specs = [ORDERS.with_name(source)] + [
            ORDERS_ENRICHED.with_name(t) for t in outputs.values()
        ]
        specs = [dataclasses.replace(s, replication_factor=1) for s in specs]
        specs.append(specs[0].dlq_spec())
        asyncio.run(ensure_topics(connect(settings), specs))
        db_path = Path(folder) / "customers"
        build_customer_db(db_path)
        print(f"publishing {args.events:,} orders to {source}", file=sys.stderr)
        asyncio.run(fill_input(settings, source, args.events))
        env = {
            "PEERS_BOOTSTRAP": bootstrap,
            "PEERS_DB": str(db_path),
            "PEERS_DATADIR": str(Path(folder) / "faust"),
            "PYTHONPATH": str(ROOT),
        }
        # The peers' own venv (bench.peers.environment), made only when one of them runs.
        peers_python = peer_python() if {"quixstreams", "faust"} & set(chosen) else PYTHON
        commands = {
            "ours": worker_command(bootstrap),
            "ours_confluent": worker_command(bootstrap, "--client", "confluent"),
            "raw_aiokafka": [
                PYTHON,
                "-m",
                "bench.peers.raw_aiokafka",
                source,
                outputs.get("raw_aiokafka", ""),
                f"peers-raw-{run}",
            ],
            "quixstreams": [
                peers_python,
                "-m",
                "bench.peers.quix",
                source,
                outputs.get("quixstreams", ""),
                f"peers-quix-{run}",
                str(args.events),
            ],
            "faust": [
                peers_python,
                "-m",
                "bench.peers.faust_agent",
                source,
                outputs.get("faust", ""),
                f"peers-faust-{run}",
            ],
        }
        results: dict[str, Outcome] = {}
        for name in chosen:
            extra = {
                "PEERS_INPUT": source,
                "PEERS_OUTPUT": outputs[name],
                "PEERS_GROUP": f"peers-{name}-{run}",
            }
            results[name] = asyncio.run(
                run_contestant(
                    name,
                    commands[name],
                    {**env, **extra},
                    settings,
                    outputs[name],
                    args.events,
                    args.timeout,
                )
            )
            outcome = results[name]
            print(
                f"{name:14s} {outcome.events_per_s:>10,.0f} events/s  "
                f"total {outcome.seconds_total:6.1f}s (incl. start-up)  "
                f"peak RSS {outcome.peak_rss_mb:6.0f} MB  {outcome.note}"
            )
        work_only = work_only_rate(db_path)
        print(f"{'work alone':14s} {work_only:>10,.0f} events/s  (no Kafka, no framework)")
    figures = {name: round(outcome.events_per_s) for name, outcome in results.items()}
    figures["work_only"] = round(work_only)
    for ours in ("ours", "ours_confluent"):
        for peer in ("raw_aiokafka", "quixstreams", "faust", "work_only"):
            if figures.get(ours) and figures.get(peer):
                figures[f"{ours}_vs_{peer}"] = round(figures[ours] / figures[peer], 2)
    print(json.dumps({**figures, "clients": versions_of_every_contestant()}))


if __name__ == "__main__":
    main()
