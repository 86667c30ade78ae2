"""Our scaling policy against KEDA's Kafka-scaler formula, simulated and for real.

Traces: steady, a 5× step, a short 5× spike.
(a) sim: the group simulator (pipeline/scaling/simulator.py), 600 s per
    trace, 200 events/s per replica, 12 partitions, 5 s replica start-up,
    and what a real group adds: 3 s eager rebalances, 2 s start-up jitter,
    ±5% noise in input and capacity, over three seeds.
(b) real: the local broker, real `pipeline worker` processes run by our
    supervisor, and an I/O-bound handler (5 ms per event, one at a time per
    process: ~200 events/s per replica), so more replicas help on 2 cores.
    KEDA's formula runs in the same supervisor, deciding every 15 s with the
    HPA's default 300 s scale-down window. Each client (aiokafka, eager;
    confluent-kafka, cooperative) and policy runs --rounds times,
    interleaved.
KEDA's lagThreshold is mapped from our policy: 200 events/s × target drain.

Per run: reaction time, time to drain, peak lag, replica-seconds against the
ideal (just enough replicas for the input at every moment), direction
changes, and the worst output gap: for each scale event (a change of
replicas until the group has settled, 10 s at least), the seconds in which
the group's output (records written to its output topic) fell below half
its input, and (the stall) below half of what it was just before. Then
each figure's worst case over the rounds, and ours/KEDA's time to drain
per round. Last line: JSON of all of it.

Run: .venv/bin/python bench/autoscale.py [--sim-only] [--real-seconds 100]
     [--traces step,spike] [--policies ours,keda] [--clients aiokafka,confluent]
     [--rounds 3] [--timeline]
(a real run takes about 2.5 minutes: 3 rounds of step and spike, both
policies and both clients take an hour; starts a private broker unless
KAFKA_BOOTSTRAP is set)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.latency import output_count, wait_for
from bench.peers.environment import versions_of_every_contestant
from pipeline.dev.localkafka import ephemeral_kafka
from pipeline.kafka.connect import connect
from pipeline.kafka.port import ConsumerOptions, TopicPartition
from pipeline.ops.topics import ensure_topics
from pipeline.publishing.producer import EventProducer
from pipeline.resilience.ratelimit import TokenBucket
from pipeline.scaling.policy import Decision, Observation, ScalingPolicy
from pipeline.scaling.simulator import (
    GroupModel,
    KedaScaler,
    OurScaler,
    Trace,
    evaluate,
    evaluate_sim,
    noisy,
    simulate,
    spike,
    steady,
    step,
)
from pipeline.scaling.supervisor import Status, Supervisor
from pipeline.scaling.worker_process import WorkerProcess
from pipeline.settings import PipelineSettings
from tests.integration.processors import OUTPUT, SOURCE, TOPICS, Keyed

REPLICA_RATE = 200.0
TARGET_DRAIN_S = 30.0
BASE_RATE = 100.0


def policy(max_replicas: int, replica_rate: float = REPLICA_RATE) -> ScalingPolicy:
    return ScalingPolicy(
        min_replicas=1,
        max_replicas=max_replicas,
        target_drain_s=TARGET_DRAIN_S,
        initial_replica_rate=replica_rate,
    )


def run_sim() -> dict[str, dict[str, dict[str, object]]]:
    base = GroupModel(per_replica_rate=REPLICA_RATE, partitions=12, max_replicas=12)
    figures: dict[str, dict[str, dict[str, object]]] = {}
    for trace in (steady(150), step(150), spike(150)):
        for seed in range(3):
            model = noisy(base, seed=seed)
            ours = simulate(trace, OurScaler(policy(12), 1), model)
            keda = simulate(trace, KedaScaler(REPLICA_RATE * TARGET_DRAIN_S, model), model)
            figures[f"{trace.name}_sim_seed{seed}"] = {
                "ours": {**evaluate_sim(ours).as_dict(), "rebalances": ours.rebalances},
                "keda": {**evaluate_sim(keda).as_dict(), "rebalances": keda.rebalances},
            }
            row = figures[f"{trace.name}_sim_seed{seed}"]
            print(
                f"sim  {trace.name:>6} seed {seed}: ours {row['ours']}\n{'':21}keda {row['keda']}"
            )
    return figures


class KedaDecider:
    """KEDA's formula behind the HPA's 15 s sync, as a supervisor's policy."""

    def __init__(self, max_replicas: int, replica_rate: float) -> None:
        model = GroupModel(per_replica_rate=replica_rate, partitions=12, max_replicas=max_replicas)
        self.scaler = KedaScaler(replica_rate * TARGET_DRAIN_S, model)
        self._last_at = -math.inf
        self._current = 1

    def __call__(self, observation: Observation) -> Decision:
        if observation.at - self._last_at >= self.scaler.interval_s:
            self._current = self.scaler.desired(observation)
            self._last_at = observation.at
        return Decision(self._current, "keda: ceil(lag / lagThreshold), HPA behaviour", None)


def real_traces(seconds: float) -> list[Trace]:
    burst_at = 20.0
    return [
        steady(BASE_RATE, duration_s=seconds * 0.6),
        step(BASE_RATE, 5, at_s=burst_at, duration_s=seconds),
        spike(BASE_RATE, 5, at_s=burst_at, length_s=15, duration_s=seconds),
    ]


async def publish(settings: PipelineSettings, topic: str, trace: Trace, started: float) -> int:
    sent = 0
    spec = SOURCE.with_name(topic)
    async with EventProducer(settings) as producer:
        bucket = TokenBucket(trace.rate(0))
        while (elapsed := time.monotonic() - started) < trace.duration_s:
            bucket.rate_per_s = max(1.0, trace.rate(elapsed))
            chunk = max(1, int(bucket.rate_per_s / 20))
            await bucket.acquire(chunk)
            events = [Keyed(key=f"k{(sent + i) % 997}", seq=sent + i) for i in range(chunk)]
            await producer.publish_many(spec, events)
            sent += chunk
    return sent


async def calibrate(settings: PipelineSettings, folder: Path) -> float:
    """Events/s one real replica of the paced handler does here (the nominal 200 is a ceiling)."""
    prefix = f"cal{uuid.uuid4().hex[:6]}."
    await ensure_topics(connect(settings), [spec.with_name(prefix + spec.name) for spec in TOPICS])
    async with EventProducer(settings) as producer:
        events = [Keyed(key=f"k{i % 997}", seq=i) for i in range(6000)]
        await producer.publish_many(SOURCE.with_name(prefix + SOURCE.name), events)
    worker = WorkerProcess(
        "paced",
        "calibration",
        {
            "PIPELINE_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "PIPELINE_TOPIC_PREFIX": prefix,
            "PIPELINE_PROCESSORS_MODULE": "tests.integration.processors",
        },
        folder / "calibration.log",
    )
    output = prefix + OUTPUT.name
    try:
        await wait_for(settings, output, 300, 60)  # joined and running
        first, began = await output_count(settings, output), time.monotonic()
        await asyncio.sleep(10)
        rate = (await output_count(settings, output) - first) / (time.monotonic() - began)
    finally:
        worker.stop(grace_s=30)
    print(f"one replica of the paced handler: {rate:,.0f} events/s", flush=True)
    return rate


class Throughput:
    """The source's and the output topic's end offsets every half second: the group's input
    and output as they happened, independent of commits (which come once a second)."""

    def __init__(self, settings: PipelineSettings, source: str, output: str) -> None:
        self.settings = settings
        self.topics = (source, output)
        self.samples: list[tuple[float, int, int]] = []
        """(monotonic time, records in, records out)."""

    async def run(self, stop: asyncio.Event) -> None:
        consumer = connect(self.settings).consumer(ConsumerOptions())
        await consumer.start()
        try:
            partitions = [
                TopicPartition(topic, p)
                for topic in self.topics
                for p in range(await consumer.partition_count(topic))
            ]
            consumer.assign(partitions)
            while not stop.is_set():
                ends = await consumer.end_offsets(partitions)
                totals = [
                    sum(o for tp, o in ends.items() if tp.topic == topic) for topic in self.topics
                ]
                self.samples.append((time.monotonic(), totals[0], totals[1]))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.5)
        finally:
            await consumer.stop()

    def per_second(self, zero: float) -> list[tuple[float, float, float]]:
        """(second since zero, input/s, output/s) over consecutive whole seconds."""
        rows = []
        i = 0
        for j in range(1, len(self.samples)):
            t0, in0, out0 = self.samples[i]
            t1, in1, out1 = self.samples[j]
            if t1 - t0 >= 1.0:
                rows.append((t0 - zero, (in1 - in0) / (t1 - t0), (out1 - out0) / (t1 - t0)))
                i = j
        return rows


SCALE_EVENT_MIN_S = 10.0


def output_gaps(
    history: list[tuple[float, Status]], rates: list[tuple[float, float, float]]
) -> list[dict[str, object]]:
    """Per scale event: the seconds in which output fell below half the input."""
    events: list[dict[str, object]] = []
    for index, (at, status) in enumerate(history):
        if index == 0 or status.replicas == history[index - 1][1].replicas:
            continue
        settled = next(
            (t for t, later in history[index + 1 :] if not later.settling), history[-1][0]
        )
        until = max(settled, at + SCALE_EVENT_MIN_S)
        during = [(s, i, o) for s, i, o in rates if at - 1 <= s < until]
        before = [o for s, _, o in rates if at - 4 <= s < at - 1]
        output_before = sum(before) / len(before) if before else 0.0
        low = [s for s, rate_in, rate_out in during if rate_in > 0 and rate_out < 0.5 * rate_in]
        stalled = [s for s, _, rate_out in during if rate_out < 0.5 * output_before]
        events.append(
            {
                "at": round(at, 1),
                "replicas": f"{history[index - 1][1].replicas}->{status.replicas}",
                "settled_after_s": round(settled - at, 1),
                "output_below_half_s": float(len(low)),
                "output_below_half_of_before_s": float(len(stalled)),
            }
        )
    return events


async def run_real_one(
    settings: PipelineSettings,
    trace: Trace,
    which: str,
    client: str,
    folder: Path,
    drain_s: float,
    replica_rate: float,
    timeline: bool = False,
) -> dict[str, object]:
    prefix = f"as{uuid.uuid4().hex[:6]}."
    await ensure_topics(connect(settings), [spec.with_name(prefix + spec.name) for spec in TOPICS])
    history: list[Status] = []
    max_replicas = 8
    supervisor = Supervisor(
        settings=settings,
        processor="paced",
        group=prefix + "paced",
        topic=prefix + SOURCE.name,
        policy=policy(max_replicas, replica_rate),
        env={
            "PIPELINE_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "PIPELINE_TOPIC_PREFIX": prefix,
            "PIPELINE_PROCESSORS_MODULE": "tests.integration.processors",
        },
        log_dir=folder / f"{trace.name}-{which}-{client}-{prefix}",
        interval_s=1.0,
        on_status=history.append,
        decide=KedaDecider(max_replicas, replica_rate) if which == "keda" else None,
        worker_args=CLIENT_ARGS[client],
    )
    stop = asyncio.Event()
    running = asyncio.ensure_future(supervisor.run(stop))
    ready = asyncio.ensure_future(supervisor.became_ready.wait())
    await asyncio.wait([ready, running], return_when=asyncio.FIRST_COMPLETED)
    if running.done():
        running.result()  # the supervisor failed: raise its error
    await asyncio.sleep(3)  # the first worker joins its group
    throughput = Throughput(settings, prefix + SOURCE.name, prefix + OUTPUT.name)
    sampling_stop = asyncio.Event()
    sampling = asyncio.ensure_future(throughput.run(sampling_stop))
    started = time.monotonic()
    sent = await publish(settings, prefix + SOURCE.name, trace, started)
    # Let the last of the backlog drain (or not) before the window closes.
    await asyncio.sleep(drain_s)
    stop.set()
    sampling_stop.set()
    await running
    await sampling
    zero = time.time() - (time.monotonic() - started)
    runs = [(s.at - zero, s) for s in history if s.at >= zero]
    rates = throughput.per_second(started)
    if timeline:
        by_second = {round(second): (i, o) for second, i, o in rates}
        for at, status in runs:
            rate_in, rate_out = by_second.get(round(at), (math.nan, math.nan))
            print(
                f"  {trace.name} {which} {client} t={at:6.1f}s topic in {rate_in:5.0f}/s "
                f"out {rate_out:5.0f}/s · {status.line()}",
                flush=True,
            )
    times = [at for at, _ in runs]
    result = evaluate(
        times,
        [float(s.lag) for _, s in runs],
        [s.replicas for _, s in runs],
        [trace.rate(t) if t < trace.duration_s else 0.0 for t in times],
        replica_rate,
        trace.burst_at,
        base_rate=trace.rate(0),
    )
    events = output_gaps(runs, rates)
    gaps = [float(e["output_below_half_s"]) for e in events]  # type: ignore[arg-type]
    stalls = [float(e["output_below_half_of_before_s"]) for e in events]  # type: ignore[arg-type]
    figures: dict[str, object] = {
        **result.as_dict(),
        "worst_output_gap_s": max(gaps, default=0.0),
        "worst_stall_s": max(stalls, default=0.0),
        "scale_events": events,
    }
    print(
        f"real {trace.name:>6} {which:>4} {client:>9}: "
        f"{ {k: v for k, v in figures.items() if k != 'scale_events'} } "
        f"({sent:,} events, {max(s.replicas for _, s in runs)} replicas at most)",
        flush=True,
    )
    return figures


CLIENT_ARGS = {
    "aiokafka": ("--client", "aiokafka"),
    "confluent": ("--client", "confluent", "--rebalance-protocol", "cooperative"),
}


def run_real(
    bootstrap: str,
    seconds: float,
    traces: list[str],
    policies: list[str],
    clients: list[str],
    rounds: int,
    timeline: bool,
) -> dict[str, object]:
    settings = PipelineSettings(bootstrap_servers=bootstrap)
    runs: dict[tuple[str, str, str], list[dict[str, object]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-autoscale-") as folder:
        rate = asyncio.run(calibrate(settings, Path(folder)))
        for round_ in range(1, rounds + 1):
            print(f"-- round {round_} of {rounds}", flush=True)
            for trace in real_traces(seconds):
                if trace.name not in traces:
                    continue
                for client in clients:
                    for which in policies:
                        figures = asyncio.run(
                            run_real_one(
                                settings,
                                trace,
                                which,
                                client,
                                Path(folder),
                                drain_s=seconds * 0.3,
                                replica_rate=rate,
                                timeline=timeline,
                            )
                        )
                        runs.setdefault((trace.name, client, which), []).append(figures)
    return summarise(runs, rate)


WORST = {
    "replica_seconds_vs_ideal": max,
    "direction_changes": max,
    "time_to_drain_s": max,
    "worst_output_gap_s": max,
    "worst_stall_s": max,
    "reaction_s": max,
    "peak_lag": max,
}


def summarise(
    runs: dict[tuple[str, str, str], list[dict[str, object]]], replica_rate: float
) -> dict[str, object]:
    """Each run, each figure's worst over the rounds, and ours/KEDA's drain per round."""
    summary: dict[str, object] = {"replica_rate": round(replica_rate, 1)}
    print("\nworst case over the rounds:")
    for (trace, client, which), figures in sorted(runs.items()):
        worst = {}
        for key, pick in WORST.items():
            values = [f[key] for f in figures if f.get(key) is not None]
            worst[key] = pick(values) if values else None  # type: ignore[type-var]
        summary[f"{trace}_real_{client}_{which}"] = {"runs": figures, "worst": worst}
        print(f"  {trace:>6} {client:>9} {which:>4}: {worst}")
        if which == "ours" and (trace, client, "keda") in runs:
            ratios = [
                float(ours["time_to_drain_s"]) / float(keda["time_to_drain_s"])  # type: ignore[arg-type]
                for ours, keda in zip(figures, runs[(trace, client, "keda")], strict=False)
                if ours.get("time_to_drain_s") is not None and keda.get("time_to_drain_s")
            ]
            if ratios:
                summary[f"{trace}_real_{client}_drain_vs_keda"] = {
                    "per_round": [round(r, 3) for r in ratios],
                    "median": round(statistics.median(ratios), 3),
                    "worst": round(max(ratios), 3),
                }
                print(
                    f"  {trace:>6} {client:>9} time to drain ours/keda per round "
                    f"{[round(r, 2) for r in ratios]}, worst {max(ratios):.2f}"
                )
    return summary


TRACE_NAMES = ("steady", "step", "spike")
POLICY_NAMES = ("ours", "keda")
CLIENT_NAMES = ("aiokafka", "confluent")


def _choices(allowed: tuple[str, ...]) -> Callable[[str], list[str]]:
    """An argparse type: a comma-separated subset of `allowed`, in the order given."""

    def parse(text: str) -> list[str]:
        chosen = [name.strip() for name in text.split(",") if name.strip()]
        unknown = [name for name in chosen if name not in allowed]
        if unknown or not chosen:
            raise argparse.ArgumentTypeError(
                f"{', '.join(unknown) or 'nothing'} not among {', '.join(allowed)}"
            )
        return chosen

    return parse


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sim-only", action="store_true")
    parser.add_argument("--real-seconds", type=float, default=100.0, help="per real trace")
    parser.add_argument(
        "--traces",
        type=_choices(TRACE_NAMES),
        default=list(TRACE_NAMES),
        help=f"comma-separated real traces to run (default: {','.join(TRACE_NAMES)})",
    )
    parser.add_argument(
        "--policies",
        type=_choices(POLICY_NAMES),
        default=list(POLICY_NAMES),
        help=f"comma-separated policies to run for real (default: {','.join(POLICY_NAMES)})",
    )
    parser.add_argument(
        "--clients",
        type=_choices(CLIENT_NAMES),
        default=list(CLIENT_NAMES),
        help=f"comma-separated clients for the workers (default: {','.join(CLIENT_NAMES)})",
    )
    parser.add_argument("--rounds", type=int, default=3, help="runs of each (default 3)")
    parser.add_argument(
        "--timeline",
        action="store_true",
        help="print every real run's supervisor line per second (lag, rates, decision)",
    )
    args = parser.parse_args()
    figures: dict[str, object] = dict(run_sim())
    if not args.sim_only:
        with ephemeral_kafka(progress=lambda m: print(f"[kafka] {m}", file=sys.stderr)) as boot:
            figures.update(
                run_real(
                    boot,
                    args.real_seconds,
                    args.traces,
                    args.policies,
                    args.clients,
                    args.rounds,
                    args.timeline,
                )
            )
    print(json.dumps({**figures, "clients": versions_of_every_contestant()}))


if __name__ == "__main__":
    main()
