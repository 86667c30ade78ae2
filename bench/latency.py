"""End-to-end latency of a consume-transform-produce job at a share of its own maximum rate.

Latency: from the moment an order is published (recorded here, per order)
to the moment its enriched output is appended by the broker (the output
topic uses LogAppendTime, so the record's timestamp is the broker's). First
a burst measures the contestant's maximum rate; then orders are published
at each --levels share of it, evenly (the rate limiter allows no burst
beyond one 5 ms chunk), for --warmup seconds that are not measured and then
for --seconds, over which p50/p99 are taken. The warm-up keeps the first
seconds of a broker this bench has just started (a cold JVM) out of the
figures; --warmup 0 puts them back in.

Without --peers: our worker (--client) at half its maximum, one round.
Prints the figures and, last, {"rate": R, "p50_ms": X, "p99_ms": Y, ...}.

--peers: the fair comparison, in one run on one broker, every contestant
on the same job (bench.peers.work) with topics of its own: our worker on
aiokafka and on confluent-kafka, a raw aiokafka loop, a raw confluent-kafka
loop and quixstreams, each at 10%, 50% and 80% of its own maximum (measured
in its first round with a burst of 150,000, then kept), in --rounds
interleaved rounds (the order rotates each round); Kafka's own
EndToEndLatency tool on the same broker beside them as the floor. Prints a
table of medians with their spread (min–max over the rounds) and, last,
{"floor": ..., "contestants": {name: {"max_rate": ..., "levels": {"50":
{"p50_ms": [round figures], ...}}}}, "medians": ..., "clients": ...}.

--breakdown: also where the time goes inside the worker, from its own
`pipeline_record_stage_seconds` histograms (pipeline.runtime.stage_times,
one record in 16) over the measured seconds: p50 and p99 of each stage
(fetched, queued, handled, acknowledged, committed) and of their sum,
read from the histogram's buckets (so to a bucket's resolution: 0.5, 1,
2.5, 5, 10, 25, 50 ms ...). The end-to-end figure above stops at the
output's append; the worker's own stops at the commit.

Run: .venv/bin/python bench/latency.py [--seconds 20] [--warmup 5] [--client confluent]
         [--breakdown] [--rate 11000]
     .venv/bin/python bench/latency.py --peers [--rounds 3] [--seconds 10] [--warmup 3]
         [--only ours,raw_aiokafka] [--breakdown]
(starts a private broker unless KAFKA_BOOTSTRAP is set)
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
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from bench.latency_table import level_key, summarize, table_lines, targets
from bench.peers.environment import peer_python, versions_of_every_contestant
from bench.peers.kafka_floor import kafka_floor
from bench.peers.launch import ROOT, job_env, worker_command
from bench.pipeline_peers import build_customer_db
from pipeline.catalogue import TopicSpec
from pipeline.dev.localkafka import ephemeral_kafka
from pipeline.dev.processes import free_ports, stop_gently
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
CALIBRATION_BURST = 150_000
"""--peers measures each contestant's maximum once, in its first round, with a longer burst
(a 60,000 burst lasts two seconds at 30,000/s and its figure swung by a quarter between
rounds), and keeps that rate in every round, so the rounds repeat one load."""


async def output_count(settings: PipelineSettings, topic: str) -> int:
    return sum((await end_offsets(connect(settings), topic)).values())


async def wait_for(settings: PipelineSettings, topic: str, count: int, timeout_s: float) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await output_count(settings, topic) >= count:
            return time.monotonic()
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{topic} did not reach {count} records in {timeout_s}s")


async def log_append_time(settings: PipelineSettings, spec: TopicSpec[Any]) -> None:
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


@dataclasses.dataclass(frozen=True)
class Contestant:
    """One way of running the job: a command given (bootstrap, source, output, group)."""

    name: str
    command: Callable[[str, str, str, str], list[str]]
    ours: bool = False
    """Our worker: it serves /metrics, so --breakdown can read its stage histograms."""


def contestants() -> dict[str, Contestant]:
    def ours_on(client: str) -> Callable[[str, str, str, str], list[str]]:
        return lambda bootstrap, source, output, group: worker_command(
            bootstrap, "--client", client
        )

    def module(python: Callable[[], str], name: str, *extra: str) -> Callable[..., list[str]]:
        return lambda bootstrap, source, output, group: [
            python(),
            "-m",
            f"bench.peers.{name}",
            source,
            output,
            group,
            *extra,
        ]

    def ours_python() -> str:
        return sys.executable

    return {
        "ours": Contestant("ours", ours_on("aiokafka"), ours=True),
        "ours_confluent": Contestant("ours_confluent", ours_on("confluent"), ours=True),
        "raw_aiokafka": Contestant("raw_aiokafka", module(ours_python, "raw_aiokafka")),
        "raw_confluent": Contestant("raw_confluent", module(ours_python, "raw_confluent")),
        # quixstreams stops after this many records: never, here.
        "quixstreams": Contestant("quixstreams", module(peer_python, "quix", str(10**12))),
    }


def latencies_by_level(
    records: list[Any],
    output: TopicSpec[Any],
    published_at: dict[str, tuple[int, int]],
    levels: int,
) -> list[list[int]]:
    """Per level, the sorted publish → append latencies (ms) of its measured orders."""
    found: list[list[int]] = [[] for _ in range(levels)]
    for record in records:
        event = decode_value(output, record.value)
        assert isinstance(event, EnrichedOrder)
        sent = published_at.get(event.order_id)
        if sent is not None:
            found[sent[0]].append(record.timestamp - sent[1])
    for latencies in found:
        latencies.sort()
    return found


async def measure(
    bootstrap: str,
    seconds: float,
    warmup_s: float,
    folder: Path,
    contestant: Contestant,
    levels: tuple[float, ...] = (0.5,),
    health_port: int | None = None,
    max_rate: float | None = None,
    burst: int = BURST,
) -> dict[str, Any]:
    """One contestant: its maximum rate (measured with a burst unless given), then p50/p99 at
    each level's share of it."""
    settings = PipelineSettings(bootstrap_servers=bootstrap)
    run = uuid.uuid4().hex[:8]
    source = ORDERS.with_name(f"latency.{run}.in")
    output = ORDERS_ENRICHED.with_name(f"latency.{run}.out")
    specs = [dataclasses.replace(s, replication_factor=1) for s in (source, output)]
    await ensure_topics(connect(settings), [*specs, specs[0].dlq_spec()])
    await log_append_time(settings, output)
    db_path = folder / "customers"
    if not db_path.exists():
        build_customer_db(db_path)
    group = f"latency-{contestant.name}-{run}"
    env = job_env(db_path, source.name, output.name, group, PEERS_BOOTSTRAP=bootstrap)
    ports = ("--health-port", str(health_port)) if health_port and contestant.ours else ()
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept when the contestant fails
        prefix=f"latency-{contestant.name}-", suffix=".log", delete=False
    )
    process = subprocess.Popen(  # noqa: ASYNC220 - starts at once
        [*contestant.command(bootstrap, source.name, output.name, group), *ports],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    generator = OrderGenerator(20_000)
    published_at: dict[str, tuple[int, int]] = {}
    at_levels: list[dict[str, Any]] = []
    expected = 0

    async def caught_up(count: int, timeout_s: float) -> float:
        try:
            return await wait_for(settings, output.name, count, timeout_s)
        except TimeoutError:
            exit_code = process.poll()
            raise RuntimeError(
                f"{contestant.name} fell behind"
                + (f" (exited {exit_code})" if exit_code is not None else "")
                + f"; its log: {log.name}"
            ) from None

    try:
        async with EventProducer(settings) as producer:
            # Warm-up: the contestant joins its group and handles a first record.
            await producer.publish_many(source, generator.batch(100))
            expected = 100
            await caught_up(expected, 90)
            if max_rate is None:
                print(
                    f"  {contestant.name}: a burst of {burst:,} for its maximum rate",
                    file=sys.stderr,
                )
                await producer.publish_many(source, generator.batch(burst))
                started = time.monotonic()
                expected += burst
                max_rate = burst / (await caught_up(expected, 180) - started)
            for index, level in enumerate(levels):
                rate = max_rate * level
                print(
                    f"  {contestant.name}: {level:.0%} of {max_rate:,.0f}/s = {rate:,.0f}/s, "
                    f"{warmup_s:.0f}s warm-up + {seconds:.0f}s measured",
                    file=sys.stderr,
                )
                chunk = max(1, int(rate / 200))  # every 5 ms
                # Generated up front: generating them live would take a core from
                # the contestant on a two-core machine and measure the generator.
                warmup_chunks = int(rate * warmup_s / chunk)
                pending = [
                    generator.batch(chunk)
                    for _ in range(warmup_chunks + int(rate * seconds / chunk) + 1)
                ]
                bucket = TokenBucket(rate, burst=chunk)
                stages_before: dict[str, dict[float, float]] | None = None
                for position, orders in enumerate(pending):
                    await bucket.acquire(chunk)
                    if position == warmup_chunks and ports:
                        stages_before = stage_histograms(health_port or 0)
                    if position >= warmup_chunks:
                        now_ms = time.time_ns() // 1_000_000
                        for order in orders:
                            published_at[order.order_id] = (index, now_ms)
                    await producer.publish_many(source, orders)
                    expected += len(orders)
                await caught_up(expected, 120)
                stages = None
                if stages_before is not None:
                    await asyncio.sleep(1.5)  # the last commits (every second) of what was measured
                    stages = breakdown(stages_before, stage_histograms(health_port or 0))
                at_levels.append({"level": level, "rate": round(rate), "stages": stages})
    finally:
        stop_gently(process, timeout_s=30)
        log.close()
    os.unlink(log.name)
    measured = latencies_by_level(
        await read_all(connect(settings), output.name), output, published_at, len(levels)
    )
    for figures, latencies in zip(at_levels, measured, strict=True):
        if not latencies:
            raise RuntimeError(f"{contestant.name}: no measured output at {figures['level']:.0%}")
        figures["events"] = len(latencies)
        figures["p50_ms"] = latencies[len(latencies) // 2]
        figures["p99_ms"] = latencies[int(len(latencies) * 0.99)]
    return {"max_rate": round(max_rate), "levels": at_levels}


def print_stages(stages: dict[str, dict[str, float | None]]) -> None:
    print("inside the worker (one record in 16, to a bucket's resolution):")
    for stage in (*STAGES, END_TO_END):
        found = stages.get(stage, {})
        p50, p99 = found.get("p50_ms"), found.get("p99_ms")
        print(
            f"  {stage:13s} p50 {'-' if p50 is None else f'{p50:7.2f}'} ms   "
            f"p99 {'-' if p99 is None else f'{p99:7.2f}'} ms"
        )


def one_worker(args: argparse.Namespace) -> None:
    """The single-contestant run: our worker at half its maximum."""
    health_port = free_ports(1)[0] if args.breakdown else None
    ours = contestants()["ours" if args.client == "aiokafka" else "ours_confluent"]
    with (
        ephemeral_kafka(progress=lambda m: print(f"[kafka] {m}", file=sys.stderr)) as bootstrap,
        tempfile.TemporaryDirectory(prefix="latency-") as folder,
    ):
        run = asyncio.run(
            measure(
                bootstrap,
                args.seconds,
                args.warmup,
                Path(folder),
                ours,
                (0.5,),
                health_port,
                # A given rate is half of a maximum not measured: two trees compared at one load.
                max_rate=2 * args.rate if args.rate else None,
            )
        )
    figures = run["levels"][0]
    print(
        f"{figures['events']:,} orders at {figures['rate']:,}/s "
        f"(half of {run['max_rate']:,}/s): "
        f"p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms"
    )
    if figures["stages"]:
        print_stages(figures["stages"])
    print(
        json.dumps(
            {
                **{k: figures[k] for k in ("rate", "p50_ms", "p99_ms")},
                "max_rate": run["max_rate"],
                **({"stages": figures["stages"]} if figures["stages"] else {}),
                "clients": versions_of_every_contestant(),
            }
        )
    )


def comparison(args: argparse.Namespace) -> None:
    """Every chosen contestant at every level, in interleaved rounds, with Kafka's floor."""
    known = contestants()
    unknown = [name for name in args.only.split(",") if name not in known]
    if unknown:
        raise SystemExit(f"unknown contestant(s) {unknown}; choose from {', '.join(known)}")
    chosen = [known[name] for name in args.only.split(",")]
    levels = tuple(float(level) for level in args.levels.split(","))
    health_port = free_ports(1)[0] if args.breakdown else None
    if any(c.name == "quixstreams" for c in chosen):
        peer_python()  # installed before anything is timed
    floors: list[dict[str, int]] = []
    runs: dict[str, list[dict[str, Any]]] = {c.name: [] for c in chosen}
    with (
        ephemeral_kafka(progress=lambda m: print(f"[kafka] {m}", file=sys.stderr)) as bootstrap,
        tempfile.TemporaryDirectory(prefix="latency-") as folder,
    ):
        settings = PipelineSettings(bootstrap_servers=bootstrap)
        for round_ in range(args.rounds):
            floor_topic = dataclasses.replace(
                ORDERS.with_name(f"latency.floor.{uuid.uuid4().hex[:8]}"),
                partitions=1,
                replication_factor=1,
            )
            asyncio.run(ensure_topics(connect(settings), [floor_topic]))
            floors.append(kafka_floor(bootstrap, floor_topic.name))
            print(f"round {round_ + 1}: Kafka's floor {floors[-1]}", file=sys.stderr)
            turn = round_ % len(chosen)
            for contestant in chosen[turn:] + chosen[:turn]:
                calibrated = runs[contestant.name][:1]
                run = asyncio.run(
                    measure(
                        bootstrap,
                        args.seconds,
                        args.warmup,
                        Path(folder),
                        contestant,
                        levels,
                        health_port,
                        max_rate=calibrated[0]["max_rate"] if calibrated else None,
                        burst=CALIBRATION_BURST,
                    )
                )
                runs[contestant.name].append(run)
                print(
                    f"round {round_ + 1}: {contestant.name} max {run['max_rate']:,}/s; "
                    + ", ".join(
                        f"{level_key(f['level'])}%: {f['p50_ms']}/{f['p99_ms']} ms"
                        for f in run["levels"]
                    ),
                    file=sys.stderr,
                )
    summary = summarize(floors, runs, levels)
    print(f"medians of {args.rounds} rounds (min–max); latency is publish → output appended:")
    for line in table_lines(summary, levels):
        print(line)
    print("issue 45's targets:")
    for label, met, shown in targets(summary):
        verdict = "not measured" if met is None else ("met" if met else "MISSED")
        print(f"  {verdict:12s} {label}: {shown}")
    print(
        json.dumps(
            {
                **summary,
                "levels": [level_key(level) for level in levels],
                "rounds": args.rounds,
                "seconds": args.seconds,
                "clients": versions_of_every_contestant(),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=None, help="measured seconds per level")
    parser.add_argument(
        "--client", choices=("aiokafka", "confluent"), default="aiokafka", help="the worker's"
    )
    parser.add_argument(
        "--warmup", type=float, default=None, help="seconds at the same rate, not measured"
    )
    parser.add_argument(
        "--breakdown", action="store_true", help="p50/p99 per stage inside our worker"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="without --peers: publish at this rate instead of half a measured maximum "
        "(a before/after comparison at one load; the burst's maximum swings by a quarter)",
    )
    parser.add_argument("--peers", action="store_true", help="the fair comparison (see above)")
    parser.add_argument("--rounds", type=int, default=3, help="with --peers")
    parser.add_argument(
        "--only", default=",".join(contestants()), help="with --peers: comma-separated contestants"
    )
    parser.add_argument(
        "--levels", default="0.1,0.5,0.8", help="with --peers: shares of each one's maximum"
    )
    args = parser.parse_args()
    if args.peers:
        args.seconds = 10 if args.seconds is None else args.seconds
        args.warmup = 3 if args.warmup is None else args.warmup
        comparison(args)
    else:
        args.seconds = 20 if args.seconds is None else args.seconds
        args.warmup = 5 if args.warmup is None else args.warmup
        one_worker(args)


if __name__ == "__main__":
    main()
