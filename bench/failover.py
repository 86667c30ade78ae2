"""A failover with state: what a standby replica saves when the owner of a large store dies.

Two replicas of a count-per-key processor (bench/failover_processors.py),
each on its own disk, over a store of --keys keys (written straight into
its changelog, 6 partitions, so the set-up costs no processing). `cold`
keeps no standby; `warm` keeps one (`Processor(standbys=1)`), so each
replica also follows the other's changelogs. Once both replicas hold
their partitions (and, warm, the other's copies), one is killed (SIGKILL)
and a few events are published to every partition. Figures per round:

- read_back: changelog records the survivor reads back to take the dead
  replica's partitions (its `pipeline_state_restored_total` after the kill);
- restore_s: the longest of its takeover restorations (its log's
  "stores restored (N record(s) in X s)" lines after the kill);
- failover_s: from the kill until every partition's new events are
  committed (the session timeout, 10 s, is most of it for both).

Rounds interleave cold and warm; medians and spreads are reported.

Run: .venv/bin/python bench/failover.py [--keys 1000000] [--rounds 3]
(starts a private broker unless KAFKA_BOOTSTRAP is set)
Last line: one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import re
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.failover_processors import PROCESSORS, VISITS, Visit
from bench.state import fill_changelog
from pipeline.dev.localkafka import ephemeral_kafka
from pipeline.kafka.connect import connect
from pipeline.ops.changelogs import ensure_changelogs
from pipeline.ops.topics import ensure_topics
from pipeline.publishing.producer import EventProducer
from pipeline.reading.offsets import committed_offsets, end_offsets
from pipeline.scaling.worker_process import WorkerProcess
from pipeline.settings import PipelineSettings

RESTORED = re.compile(r"stores restored \((\d+) record\(s\) in ([\d.]+)s\)")
CONTESTANTS = ("cold", "warm")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def metric(replica: WorkerProcess, name: str) -> float:
    return replica.metrics().get(name, 0.0)


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.1)


def drained(settings: PipelineSettings, group: str, topic: str) -> bool:
    clients = connect(settings)
    ends = asyncio.run(end_offsets(clients, topic))
    done = asyncio.run(committed_offsets(clients, group, topic))
    return all(done.get(p, 0) >= end for p, end in ends.items())


def one_round(
    settings: PipelineSettings, name: str, keys: int, folder: Path, run: str
) -> dict[str, float]:
    prefix = f"fo{run}."
    prefixed = settings.model_copy(update={"topic_prefix": prefix})
    source = VISITS.with_name(prefix + VISITS.name)
    processor = PROCESSORS[name]
    group = prefix + processor.name
    clients = connect(settings)
    asyncio.run(ensure_topics(clients, [source, source.dlq_spec()]))
    local = dataclasses.replace(processor, source=source)
    (changelog,) = asyncio.run(ensure_changelogs(clients, local, group))
    log(f"{name}: writing {keys:,} keys into {changelog}")
    asyncio.run(fill_changelog(settings, changelog, keys, partition=None))
    per_partition = asyncio.run(end_offsets(connect(settings), changelog))
    env = {
        "PIPELINE_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "PIPELINE_TOPIC_PREFIX": prefix,
        "PIPELINE_PROCESSORS_MODULE": "bench.failover_processors",
    }
    replicas = [
        WorkerProcess(
            name,
            f"r{i}",
            env,
            folder / f"{name}-{run}-r{i}.log",
            "--store-dir",
            str(folder / f"{name}-{run}-disk-{i}"),
        )
        for i in range(2)
    ]
    survivor, victim = replicas
    try:
        for replica in replicas:
            replica.wait_ready(120)

        def owned(replica: WorkerProcess) -> set[int]:
            text = replica.get("/metrics")[1]
            pattern = r'pipeline_partition_committed_offset\{[^}]*partition="(\d+)"'
            return {int(n) for n in re.findall(pattern, text)}

        def settled() -> bool:
            mine, theirs = owned(survivor), owned(victim)
            if not mine or not theirs or len(mine | theirs) < len(per_partition):
                return False
            if metric(survivor, "pipeline_partition_restore_remaining_records") > 0:
                return False
            restored = metric(survivor, "pipeline_state_restored_total")
            if name == "cold":
                return restored >= sum(per_partition[p] for p in mine)
            if name == "warm":
                # Its copies of the other's partitions placed, and read up to the end: by the
                # standby, or earlier, when it held them itself before the other joined.
                placed = metric(survivor, "pipeline_standby_partitions") == len(theirs)
                copied = metric(survivor, "pipeline_standby_records_total")
                return placed and restored + copied >= sum(per_partition.values())
            return True

        try:
            wait_for(settled, 300, f"{name}: stores restored and copies warm")
        except RuntimeError:
            log(f"partitions {owned(survivor)} / {owned(victim)}, changelog {per_partition}")
            for replica in replicas:
                figures = {
                    k: v for k, v in replica.metrics().items() if "standby" in k or "restor" in k
                }
                log(f"{replica.replica_id}: {figures}\n{replica.tail(30)}")
            raise
        theirs = owned(victim)
        before = metric(survivor, "pipeline_state_restored_total")
        log_lines_before = len(survivor.tail(1_000_000).splitlines())
        killed = time.monotonic()
        victim.signal(signal.SIGKILL)
        victim.wait()

        async def publish() -> None:
            async with EventProducer(prefixed) as producer:
                await producer.publish_many(source, [Visit(key=f"new-{n}") for n in range(600)])

        asyncio.run(publish())
        wait_for(lambda: drained(settings, group, source.name), 300, f"{name}: the takeover")
        failover_s = time.monotonic() - killed
        read_back = metric(survivor, "pipeline_state_restored_total") - before
        after = survivor.tail(1_000_000).splitlines()[log_lines_before:]
        restores = [float(m.group(2)) for line in after for m in [RESTORED.search(line)] if m]
        figures = {
            "read_back": read_back,
            "restore_s": max(restores, default=0.0),
            "failover_s": round(failover_s, 2),
            "dead_replicas_keys": float(sum(per_partition[p] for p in theirs)),
        }
        log(f"{name}: {json.dumps(figures)}")
        return figures
    finally:
        for replica in replicas:
            if replica.running:
                replica.signal(signal.SIGTERM)
                try:
                    replica.wait(60)
                except Exception:  # noqa: BLE001 - stopped hard instead, said so
                    log(f"{replica.replica_id} did not stop on SIGTERM; killing it")
                    replica.signal(signal.SIGKILL)
                    replica.wait()


def spread(values: list[float]) -> dict[str, object]:
    return {
        "median": round(statistics.median(values), 2),
        "spread": [round(min(values), 2), round(max(values), 2)],
        "rounds": [round(v, 2) for v in values],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keys", type=int, default=1_000_000, help="keys in the store")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {name: [] for name in CONTESTANTS}
    with (
        ephemeral_kafka(progress=lambda m: log(f"[kafka] {m}")) as bootstrap,
        tempfile.TemporaryDirectory(prefix="failover-bench-") as folder,
    ):
        settings = PipelineSettings(bootstrap_servers=bootstrap)
        for round_number in range(args.rounds):
            for name in CONTESTANTS:
                run = f"{round_number}{name[0]}{uuid.uuid4().hex[:6]}"
                log(f"round {round_number + 1}/{args.rounds}: {name}")
                results[name].append(one_round(settings, name, args.keys, Path(folder), run))
    figures: dict[str, object] = {"keys": args.keys}
    for name, rounds in results.items():
        for field in ("read_back", "restore_s", "failover_s"):
            figures[f"{name}_{field}"] = spread([r[field] for r in rounds])
    for name, rounds in results.items():
        shares = [
            r["read_back"] / r["dead_replicas_keys"] for r in rounds if r["dead_replicas_keys"]
        ]
        figures[f"{name}_read_back_share_of_dead_keys"] = spread(shares) if shares else None
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
