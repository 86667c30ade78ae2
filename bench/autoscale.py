"""Our scaling policy against KEDA's Kafka-scaler formula, simulated and for real.

Traces: steady, a 5× step, a short 5× spike.
(a) sim: the deterministic group simulator (pipeline/scaling/simulator.py), 600 s
    per trace, 200 events/s per replica, 12 partitions, 5 s replica start-up.
(b) real: the local broker, real `pipeline worker` processes run by our
    supervisor, and an I/O-bound handler (5 ms per event, one at a time per
    process: ~200 events/s per replica), so more replicas help on 2 cores.
    KEDA's formula runs in the same supervisor, deciding every 15 s with the
    HPA's default 300 s scale-down window.
KEDA's lagThreshold is mapped from our policy: 200 events/s × target drain.

Per policy: reaction time, time to drain, peak lag, replica-seconds against
the ideal (just enough replicas for the input at every moment), direction
changes. Last line: JSON keyed by trace and mode, e.g.
{"step_sim": {"ours": {...}, "keda": {...}}, "step_real": {...}, ...}.

Run: .venv/bin/python bench/autoscale.py [--sim-only] [--real-seconds 100]
     [--traces step,spike] [--policies ours] [--timeline]
(the real part takes about 14 minutes for all traces and both policies;
starts a private broker unless KAFKA_BOOTSTRAP is set)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.latency import output_count, wait_for
from pipeline.dev.localkafka import ephemeral_kafka
from pipeline.kafka.connect import connect
from pipeline.kafka.producer import EventProducer
from pipeline.ops.topics import ensure_topics
from pipeline.resilience.ratelimit import TokenBucket
from pipeline.scaling.policy import Decision, Observation, ScalingPolicy
from pipeline.scaling.simulator import (
    GroupModel,
    KedaScaler,
    OurScaler,
    Trace,
    evaluate,
    evaluate_sim,
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
    model = GroupModel(per_replica_rate=REPLICA_RATE, partitions=12, max_replicas=12)
    figures: dict[str, dict[str, dict[str, object]]] = {}
    for trace in (steady(150), step(150), spike(150)):
        ours = evaluate_sim(simulate(trace, OurScaler(policy(12), 1), model))
        keda = evaluate_sim(
            simulate(trace, KedaScaler(REPLICA_RATE * TARGET_DRAIN_S, model), model)
        )
        figures[f"{trace.name}_sim"] = {"ours": ours.as_dict(), "keda": keda.as_dict()}
        print(f"sim  {trace.name:>6}: ours {ours.as_dict()}\n{'':14}keda {keda.as_dict()}")
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


async def run_real_one(
    settings: PipelineSettings,
    trace: Trace,
    which: str,
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
        log_dir=folder / f"{trace.name}-{which}",
        interval_s=1.0,
        on_status=history.append,
        decide=KedaDecider(max_replicas, replica_rate) if which == "keda" else None,
    )
    stop = asyncio.Event()
    running = asyncio.ensure_future(supervisor.run(stop))
    ready = asyncio.ensure_future(supervisor.became_ready.wait())
    await asyncio.wait([ready, running], return_when=asyncio.FIRST_COMPLETED)
    if running.done():
        running.result()  # the supervisor failed: raise its error
    await asyncio.sleep(3)  # the first worker joins its group
    started = time.monotonic()
    sent = await publish(settings, prefix + SOURCE.name, trace, started)
    # Let the last of the backlog drain (or not) before the window closes.
    await asyncio.sleep(drain_s)
    stop.set()
    await running
    runs = [s for s in history if s.at >= time.time() - (time.monotonic() - started)]
    zero = time.time() - (time.monotonic() - started)
    times = [s.at - zero for s in runs]
    if timeline:
        for at, status in zip(times, runs, strict=True):
            print(f"  {trace.name} {which} t={at:6.1f}s {status.line()}", flush=True)
    result = evaluate(
        times,
        [float(s.lag) for s in runs],
        [s.replicas for s in runs],
        [trace.rate(t) if t < trace.duration_s else 0.0 for t in times],
        replica_rate,
        trace.burst_at,
        base_rate=trace.rate(0),
    )
    print(
        f"real {trace.name:>6} {which:>4}: {result.as_dict()} ({sent:,} events, "
        f"{max(s.replicas for s in runs)} replicas at most)",
        flush=True,
    )
    return result.as_dict()


def run_real(
    bootstrap: str,
    seconds: float,
    traces: list[str],
    policies: list[str],
    timeline: bool,
) -> dict[str, dict[str, dict[str, object]]]:
    settings = PipelineSettings(bootstrap_servers=bootstrap)
    figures: dict[str, dict[str, dict[str, object]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-autoscale-") as folder:
        rate = asyncio.run(calibrate(settings, Path(folder)))
        for trace in real_traces(seconds):
            if trace.name not in traces:
                continue
            figures[f"{trace.name}_real"] = {
                which: asyncio.run(
                    run_real_one(
                        settings,
                        trace,
                        which,
                        Path(folder),
                        drain_s=seconds * 0.3,
                        replica_rate=rate,
                        timeline=timeline,
                    )
                )
                for which in policies
            }
    return figures


TRACE_NAMES = ("steady", "step", "spike")
POLICY_NAMES = ("ours", "keda")


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
        "--timeline",
        action="store_true",
        help="print every real run's supervisor line per second (lag, rates, decision)",
    )
    args = parser.parse_args()
    figures = run_sim()
    if not args.sim_only:
        with ephemeral_kafka(progress=lambda m: print(f"[kafka] {m}", file=sys.stderr)) as boot:
            figures.update(
                run_real(boot, args.real_seconds, args.traces, args.policies, args.timeline)
            )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
