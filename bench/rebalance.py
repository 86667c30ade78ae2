"""What a scale event costs the partitions that do not move, per client and rebalance protocol.

Two replicas of the enrichment job under a steady load (--rate orders/s,
published evenly); a third replica joins at --join-at seconds and leaves
(SIGTERM) at --leave-at; the run ends --tail seconds later. For each
client-protocol pair it prints, per window (steady: before the join; join:
from the join to the leave; leave: from the leave to the end):

- the end-to-end p99: from an order's publication to its output's append
  by the broker (the output topic stamps LogAppendTime);
- the longest output gap of partitions that did not move: partitions with
  the same owner before and after the event (read from the replicas' own
  "assigned"/"revoked" log lines); a gap is the time between two outputs of
  one input partition, or from the window's start to its first output.

With eager rebalances every partition stops at each event, so their gap
shows the pause; with an incremental protocol only the moved ones should.
Last line: {"<client>-<protocol>": {"steady_p99_ms": …, "join_p99_ms": …,
"leave_p99_ms": …, "max_gap_unmoved_ms": …}, …}.

Run: .venv/bin/python bench/rebalance.py [--pairs aiokafka-eager,confluent-cooperative]
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
from datetime import datetime
from itertools import pairwise
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from bench.latency import log_append_time, wait_for
from bench.peers.environment import versions_of_every_contestant
from bench.peers.launch import ROOT, job_env, worker_command
from bench.pipeline_peers import build_customer_db
from pipeline.dev.localkafka import ephemeral_kafka
from pipeline.kafka.connect import connect
from pipeline.kafka.partitioner import kafka_partition
from pipeline.ops.topics import ensure_topics
from pipeline.publishing.producer import EventProducer
from pipeline.reading.reader import read_all
from pipeline.resilience.ratelimit import TokenBucket
from pipeline.settings import PipelineSettings
from pipeline.wire.codec import decode_value
from producers.loadgen import OrderGenerator
from topics import ORDERS, ORDERS_ENRICHED
from topics.models import EnrichedOrder

PAIRS = "aiokafka-eager,confluent-eager,confluent-cooperative,confluent-consumer"
ASSIGNMENT_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \S+ INFO pipeline\.worker: "
    r"(assigned|revoked) \[([\d, ]*)\]"
)
LEFT_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \S+ INFO pipeline\.worker: left group"
)


@dataclasses.dataclass
class Change:
    at: float
    replica: str
    kind: str
    partitions: set[int]


def assignment_changes(logs: dict[str, Path]) -> list[Change]:
    changes = []
    for replica, path in logs.items():
        for line in path.read_text(errors="replace").splitlines():
            if (left := LEFT_LINE.match(line)) is not None:
                # A leaver logs no revocation: what it held moved, whoever takes it.
                changes.append(Change(_stamp(left[1]), replica, "left", set()))
                continue
            found = ASSIGNMENT_LINE.match(line)
            if found is None:
                continue
            numbers = {int(n) for n in found[3].split(",") if n.strip()}
            changes.append(Change(_stamp(found[1]), replica, found[2], numbers))
    return sorted(changes, key=lambda change: change.at)


def _stamp(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def owners_at(changes: list[Change], moment: float) -> dict[int, str]:
    held: dict[str, set[int]] = {}
    for change in changes:
        if change.at > moment:
            break
        mine = held.setdefault(change.replica, set())
        if change.kind == "assigned":
            mine |= change.partitions
        elif change.kind == "left":
            mine.clear()
        else:
            mine -= change.partitions
    return {partition: replica for replica, mine in held.items() for partition in mine}


def percentile(values: list[int], share: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] if ordered else -1


def longest_gap(stamps: list[int], start_ms: int, end_ms: int) -> tuple[int, int]:
    """The longest gap, and when it began (ms after `start_ms`)."""
    inside = sorted(s for s in stamps if start_ms <= s < end_ms)
    if not inside:
        return end_ms - start_ms, 0
    edges = [start_ms, *inside]
    return max((later - earlier, earlier - start_ms) for earlier, later in pairwise(edges))


async def run_pair(
    bootstrap: str, client: str, protocol: str, args: argparse.Namespace, folder: Path
) -> dict[str, int]:
    settings = PipelineSettings(bootstrap_servers=bootstrap)
    run = uuid.uuid4().hex[:8]
    source = ORDERS.with_name(f"rebalance.{run}.in")
    output = ORDERS_ENRICHED.with_name(f"rebalance.{run}.out")
    specs = [dataclasses.replace(s, replication_factor=1) for s in (source, output)]
    await ensure_topics(connect(settings), [*specs, specs[0].dlq_spec()])
    await log_append_time(settings, output)
    db_path = folder / f"customers-{run}"
    build_customer_db(db_path)
    env = job_env(
        db_path,
        source.name,
        output.name,
        f"rebalance-{run}",
        PIPELINE_CLIENT=client,
        PIPELINE_REBALANCE_PROTOCOL=protocol,
    )
    logs = {name: folder / f"{run}-{name}.log" for name in ("r0", "r1", "r2")}

    def start(name: str) -> subprocess.Popen[bytes]:
        with logs[name].open("wb") as log:
            return subprocess.Popen(
                [*worker_command(bootstrap, "--replica-id", name), "--log-level", "INFO"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    workers = [start("r0"), start("r1")]
    generator = OrderGenerator(20_000)
    published_at: dict[str, int] = {}
    rate = args.rate
    chunk = max(1, rate // 200)
    try:
        async with EventProducer(settings) as producer:
            await producer.publish_many(source, generator.batch(100))
            await wait_for(settings, output.name, 100, 90)
            pending = [generator.batch(chunk) for _ in range(int(rate * args.duration / chunk) + 1)]
            bucket = TokenBucket(rate, burst=chunk)
            started = time.time()
            joined = left = 0.0
            for orders in pending:
                await bucket.acquire(chunk)
                now = time.time()
                if not joined and now - started >= args.join_at:
                    workers.append(start("r2"))
                    joined = now
                if not left and now - started >= args.leave_at:
                    workers[2].send_signal(signal.SIGTERM)
                    left = now
                now_ms = int(now * 1000)
                for order in orders:
                    published_at[order.order_id] = now_ms
                await producer.publish_many(source, orders)
            ended = time.time()
        await wait_for(settings, output.name, 100 + len(published_at), 180)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=60)
    latencies: dict[str, list[int]] = {"steady": [], "join": [], "leave": []}
    appended: dict[int, list[int]] = {}
    windows = {
        "steady": (started + 5, joined),
        "join": (joined, left),
        "leave": (left, ended),
    }
    for record in await read_all(connect(settings), output.name):
        event = decode_value(output, record.value)
        assert isinstance(event, EnrichedOrder)
        sent_ms = published_at.get(event.order_id)
        if sent_ms is None:
            continue
        partition = kafka_partition(event.customer_id.encode(), source.partitions)
        appended.setdefault(partition, []).append(record.timestamp)
        for name, (low, high) in windows.items():
            if low * 1000 <= sent_ms < high * 1000:
                latencies[name].append(record.timestamp - sent_ms)
    changes = assignment_changes(logs)
    gaps = []
    for event, event_at, window_end in (("join", joined, left), ("leave", left, ended)):
        before, after = owners_at(changes, event_at - 0.001), owners_at(changes, window_end)
        unmoved = sorted(p for p, owner in before.items() if after.get(p) == owner)
        for partition in unmoved:
            gap, began = longest_gap(
                appended.get(partition, []), int(event_at * 1000), int(window_end * 1000)
            )
            gaps.append(gap)
            print(
                f"  {event}: partition {partition} (stayed on {before[partition]}): longest "
                f"gap {gap} ms, from {began} ms after the {event}",
                file=sys.stderr,
            )
    return {
        "steady_p99_ms": percentile(latencies["steady"], 0.99),
        "join_p99_ms": percentile(latencies["join"], 0.99),
        "leave_p99_ms": percentile(latencies["leave"], 0.99),
        "max_gap_unmoved_ms": max(gaps) if gaps else -1,
        "unmoved_partitions": len(gaps),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", default=PAIRS, help="comma-separated client-protocol pairs")
    parser.add_argument("--rate", type=int, default=2000, help="orders per second")
    parser.add_argument("--join-at", type=float, default=20.0)
    parser.add_argument("--leave-at", type=float, default=45.0)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--logs", type=Path, help="keep the replicas' logs in this folder")
    args = parser.parse_args()
    figures: dict[str, dict[str, int]] = {}
    with (
        ephemeral_kafka(progress=lambda m: print(f"[kafka] {m}", file=sys.stderr)) as bootstrap,
        tempfile.TemporaryDirectory(prefix="rebalance-") as folder,
    ):
        for pair in args.pairs.split(","):
            client, protocol = pair.split("-", 1)
            print(f"{pair}: {args.duration:.0f}s at {args.rate:,}/s …", file=sys.stderr)
            logs = args.logs or Path(folder)
            logs.mkdir(parents=True, exist_ok=True)
            found = asyncio.run(run_pair(bootstrap, client, protocol, args, logs))
            figures[pair] = found
            print(
                f"{pair:24s} p99 steady {found['steady_p99_ms']:>6} ms, "
                f"join {found['join_p99_ms']:>6} ms, leave {found['leave_p99_ms']:>6} ms; "
                f"longest gap of an unmoved partition {found['max_gap_unmoved_ms']:>6} ms "
                f"({found['unmoved_partitions']} partition-events)"
            )
    print(json.dumps({**figures, "clients": versions_of_every_contestant()}))


if __name__ == "__main__":
    main()
