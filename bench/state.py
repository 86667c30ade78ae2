"""State: the same stateful job on our runtime and on quixstreams, and restoring a large store.

Throughput: a running count and sum per customer over 100,000 customers
(uniform), one output per event with the customer's figures
(bench/peers/state_job.py); ours keeps them in two stores with changelogs
(at-least-once), quixstreams in its RocksDB state with changelogs. Rounds
interleave the contestants, each round with its own group, output and state
folder; events/s is measured from outside on the output's end offsets
between 10% and 90%, as bench/pipeline_peers.py does.

Restoration: a changelog of N keys on one partition, read into an empty
local copy by `pipeline.runtime.restoration.restore` in a fresh process,
for N = 10,000 and 1,000,000: seconds, and the process's peak RSS (the
memory a store's keys cost, if any, shows as the difference).

Run: .venv/bin/python bench/state.py [--events 100000] [--rounds 3]
         [--restore-keys 10000,1000000]
(starts a private broker; the peers run in their own venv, bench.peers.environment)
Last line: one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgpack

from bench.peers.environment import peer_python, versions_of_every_contestant
from bench.peers.launch import PIPELINE, ROOT
from bench.peers.state_job import CUSTOMERS, running_topic
from bench.pipeline_peers import fill_input, run_contestant
from pipeline.dev.localkafka import ephemeral_kafka
from pipeline.kafka.connect import connect
from pipeline.metrics import Metrics
from pipeline.ops.topics import ensure_topics
from pipeline.publishing.producer import EventProducer
from pipeline.runtime.host import StateParts
from pipeline.runtime.restoration import open_state, restore
from pipeline.runtime.worker import state_bounds
from pipeline.settings import PipelineSettings
from pipeline.stores.store_spec import Store, changelog_topic
from pipeline.wire.codec import EncodedEvent
from producers.loadgen import OrderGenerator
from topics import ORDERS

PYTHON = sys.executable
RESTORED = Store("counts")


async def fill_changelog(
    settings: PipelineSettings, topic: str, keys: int, partition: int | None = 0
) -> None:
    """`keys` distinct keys, each with a count, as a store's changelog holds them: all on
    `partition`, or (None) each on its key's partition."""
    async with EventProducer(settings) as producer:
        pending = []
        for start in range(0, keys, 20_000):
            records = [
                EncodedEvent(f"customer-{n:07d}".encode(), msgpack.packb(n), [], "", partition)
                for n in range(start, min(keys, start + 20_000))
            ]
            pending.append(await producer.submit_encoded(topic, records))
            if len(pending) > 4:
                await pending.pop(0)
        for future in pending:
            await future


def restore_in_this_process(bootstrap: str, group: str, folder: str) -> None:
    """The child's part: restore partition 0 into an empty folder; print seconds and RSS."""
    parts = StateParts(
        connect(PipelineSettings(bootstrap_servers=bootstrap)),
        group,
        Path(folder),
        state_bounds(),
        read_committed=False,
    )
    state = open_state(parts, (RESTORED,), 0)
    assert state is not None
    before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.monotonic()
    report = asyncio.run(restore(state, parts, Metrics(), asyncio.Event()))
    seconds = time.monotonic() - started
    keys = state.local["counts"].count()
    state.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "records": report.records,
                "keys": keys,
                "seconds": round(seconds, 2),
                "rss_before_mb": round(before_mb),
                "peak_rss_mb": round(peak_mb),
            }
        )
    )


def measure_restore(settings: PipelineSettings, keys: int, run: str) -> dict[str, float]:
    group = f"restore-{keys}-{run}"
    topic = changelog_topic(group, RESTORED.name)
    asyncio.run(
        ensure_topics(connect(settings), [running_topic(topic)])  # 12 partitions, 0 is used
    )
    asyncio.run(fill_changelog(settings, topic, keys))
    with tempfile.TemporaryDirectory(prefix="state-restore-") as folder:
        child = subprocess.run(
            [PYTHON, __file__, "--restore-child", settings.bootstrap_servers, group, folder],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    figures: dict[str, float] = json.loads(child.stdout.strip().splitlines()[-1])
    print(
        f"restore {keys:>9,} keys: {figures['seconds']:6.1f}s, "
        f"peak RSS {figures['peak_rss_mb']:.0f} MB (before {figures['rss_before_mb']:.0f} MB)",
        file=sys.stderr,
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="ours,quixstreams", help="comma-separated contestants")
    parser.add_argument("--restore-keys", default="10000,1000000")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per contestant")
    parser.add_argument("--restore-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.restore_child:
        restore_in_this_process(*args.restore_child)
        return
    chosen = [name for name in args.only.split(",") if name]
    rates: dict[str, list[float]] = {name: [] for name in chosen}
    restores: dict[str, dict[str, float]] = {}
    with (
        ephemeral_kafka(progress=lambda m: print(f"[kafka] {m}", file=sys.stderr)) as bootstrap,
        tempfile.TemporaryDirectory(prefix="state-bench-") as folder,
    ):
        settings = PipelineSettings(bootstrap_servers=bootstrap)
        run = uuid.uuid4().hex[:8]
        source = f"state.{run}.in"
        source_spec = dataclasses.replace(ORDERS.with_name(source), replication_factor=1)
        specs = [source_spec, source_spec.dlq_spec()]
        asyncio.run(ensure_topics(connect(settings), specs))
        print(f"publishing {args.events:,} orders to {source}", file=sys.stderr)
        # Uniform: every one of the customers is a key.
        asyncio.run(fill_input(settings, source, args.events, OrderGenerator(CUSTOMERS, skew=0.0)))
        peers_python = peer_python() if "quixstreams" in chosen else PYTHON
        for round_number in range(args.rounds):
            for name in chosen:
                tag = f"{name}-{round_number}-{run}"
                output = f"state.{run}.out.{name}.{round_number}"
                asyncio.run(ensure_topics(connect(settings), [running_topic(output)]))
                state_dir = Path(folder) / tag
                command = {
                    "ours": [
                        PIPELINE,
                        "worker",
                        "state",
                        "--processors-module",
                        "bench.peers.state_ours",
                        "--bootstrap",
                        bootstrap,
                        "--log-level",
                        "WARNING",
                        "--store-dir",
                        str(state_dir),
                    ],
                    "quixstreams": [
                        peers_python,
                        "-m",
                        "bench.peers.state_quix",
                        source,
                        output,
                        f"state-{tag}",
                        str(args.events),
                    ],
                }[name]
                env = {
                    "PEERS_BOOTSTRAP": bootstrap,
                    "PEERS_INPUT": source,
                    "PEERS_OUTPUT": output,
                    "PEERS_GROUP": f"state-{tag}",
                    "PEERS_STATE_DIR": str(state_dir),
                    "PYTHONPATH": str(ROOT),
                }
                outcome = asyncio.run(
                    run_contestant(name, command, env, settings, output, args.events, args.timeout)
                )
                rates[name].append(outcome.events_per_s)
                print(
                    f"round {round_number + 1} {name:12s} {outcome.events_per_s:>9,.0f} "
                    f"events/s  peak RSS {outcome.peak_rss_mb:5.0f} MB  {outcome.note}",
                    file=sys.stderr,
                )
        for keys in (int(k) for k in args.restore_keys.split(",") if k):
            restores[str(keys)] = measure_restore(settings, keys, run)
    figures: dict[str, object] = {
        f"{name}_events_per_s_median": round(statistics.median(values))
        for name, values in rates.items()
        if values
    }
    figures["rounds"] = {name: [round(v) for v in values] for name, values in rates.items()}
    if rates.get("ours") and rates.get("quixstreams"):
        ratios = [o / q for o, q in zip(rates["ours"], rates["quixstreams"], strict=True) if q]
        figures["ours_vs_quixstreams_median"] = round(statistics.median(ratios), 2)
        figures["ours_vs_quixstreams_spread"] = [round(min(ratios), 2), round(max(ratios), 2)]
    figures["restore"] = restores
    sizes = sorted(restores, key=int)
    if len(sizes) >= 2:
        small, large = restores[sizes[0]], restores[sizes[-1]]
        figures["restore_rss_ratio_large_vs_small"] = round(
            large["peak_rss_mb"] / small["peak_rss_mb"], 2
        )
    figures["clients"] = versions_of_every_contestant()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
