"""Queue delivery against a stream: records/s at 1, 3, 6 and 12 replicas on 3 partitions.

Each record costs 20 ms (bench/queue_processors.py). `blocking`: a
synchronous call (`run_in="thread"`) one at a time per replica, so a
replica does at most 50 records/s: a consumer group's replicas past the
3 partitions sit idle, a share group's keep taking records. `awaiting`: an
`async` handler awaiting 20 ms; the stream runs 8 per-key lanes per
partition, the queue 8 slots per replica, so both have concurrency of
their own and the comparison is of the modes at equal effort.

Per round and handler, each mode gets a fresh topic with a backlog and
replicas started in steps (1, then 3, 6, 12, joining the same group);
after each step settles (SETTLE_S), outputs are counted over --seconds. A
window in which the backlog ran out is reported as such, not as a rate.
The modes alternate which goes first, round by round; medians and spreads
over --rounds. Both modes run on the confluent client (queues need it).

Run: .venv/bin/python bench/queue.py [--rounds 3] [--seconds 8] [--sizes 1,3,6,12]
(starts a private broker unless KAFKA_BOOTSTRAP is set)
Last line: one JSON object of the figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as `bench/queue.py`, this folder is first on the path and this file would be the
# standard library's `queue` (which asyncio's thread pools import): the project root instead.
sys.path.remove(str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import asyncio
import importlib.metadata
import json
import signal
import statistics
import tempfile
import time
import uuid

import confluent_kafka

from bench.queue_processors import AWAITING_LANES, AWAITING_SLOTS, JOBS, TOPICS, Job
from pipeline.dev.localkafka import ephemeral_kafka
from pipeline.dev.processes import stop_gently
from pipeline.kafka.connect import connect
from pipeline.ops.topics import ensure_topics
from pipeline.publishing.producer import EventProducer
from pipeline.reading.offsets import end_offsets
from pipeline.scaling.worker_process import WorkerProcess
from pipeline.settings import PipelineSettings, ProducerTuning

SETTLE_S = 5.0
"""After a step's replicas are ready: a consumer group rebalances, a share group's new
members make their first fetch (about 5 s on Kafka 4.4)."""
BACKLOG = {"blocking": 16_000, "awaiting": 80_000}
"""Enough for every window of a round at the fastest rate seen on this machine."""
MODES = ("queue", "stream")
SMALL_BATCH = 16 * 1024
"""About 100 jobs a batch: 2 s of one slot's work at 20 ms each, well inside its lock."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def alive(replica: WorkerProcess, timeout_s: float) -> None:
    """Its health server answers: a stream replica is not *ready* (caught up) for minutes
    behind this backlog, and needs not be to be measured."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if replica.get("/healthz")[0] == 200:
                return
        except OSError:
            pass  # not listening yet
        if not replica.running or time.monotonic() > deadline:
            raise RuntimeError(f"{replica.replica_id} not alive: {replica.tail()}")
        time.sleep(0.2)


def outputs(settings: PipelineSettings, topic: str) -> int:
    return sum(asyncio.run(end_offsets(connect(settings), topic)).values())


def one_mode(
    settings: PipelineSettings,
    handler: str,
    mode: str,
    sizes: list[int],
    seconds: float,
    folder: Path,
) -> dict[int, float | None]:
    """Records/s at each size (None: the backlog ran out in the window)."""
    prefix = f"q{uuid.uuid4().hex[:8]}."
    clients = connect(settings)
    asyncio.run(ensure_topics(clients, [spec.with_name(prefix + spec.name) for spec in TOPICS]))
    source = JOBS.with_name(prefix + JOBS.name)
    done_topic = prefix + "queue.done"
    backlog = BACKLOG[handler]

    async def publish() -> None:
        # Small producer batches: librdkafka's share consumer acquires a whole batch at a
        # time (docs/concepts/queues.md), and a batch must fit in one slot's record lock.
        small = settings.model_copy(update={"producer": ProducerTuning(batch_bytes=SMALL_BATCH)})
        async with EventProducer(small) as producer:
            for start in range(0, backlog, 10_000):
                jobs = [Job(key=f"k{n}", n=n) for n in range(start, min(backlog, start + 10_000))]
                await producer.publish_many(source, jobs)

    asyncio.run(publish())
    env = {
        "PIPELINE_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "PIPELINE_TOPIC_PREFIX": prefix,
        "PIPELINE_PROCESSORS_MODULE": "bench.queue_processors",
        "PIPELINE_CLIENT": "confluent",
    }
    processor = f"{handler}_{mode}"
    replicas: list[WorkerProcess] = []
    rates: dict[int, float | None] = {}
    try:
        for size in sizes:
            new = [
                WorkerProcess(processor, f"r{n}", env, folder / f"{processor}-{prefix}r{n}.log")
                for n in range(len(replicas), size)
            ]
            replicas += new
            for replica in new:
                alive(replica, 120)
            time.sleep(SETTLE_S)
            before, started = outputs(settings, done_topic), time.monotonic()
            time.sleep(seconds)
            after, elapsed = outputs(settings, done_topic), time.monotonic() - started
            ran_out = after >= backlog
            rates[size] = None if ran_out else round((after - before) / elapsed, 1)
            log(f"{processor} at {size} replica(s): {rates[size]} records/s")
            if ran_out:
                break
    finally:
        for replica in replicas:
            replica.signal(signal.SIGTERM)  # all drain at once
        for replica in replicas:
            stop_gently(replica.process, timeout_s=60)
    return rates


def summary(values: list[float | None]) -> dict[str, object]:
    measured = [v for v in values if v is not None]
    if not measured:
        return {"median": None, "rounds": values}
    return {
        "median": round(statistics.median(measured), 1),
        "spread": [min(measured), max(measured)],
        "rounds": values,
    }


def ratio(top: list[float | None], bottom: list[float | None]) -> dict[str, object]:
    """Per round (contestants of one round ran minutes apart, in alternating order)."""
    pairs = [t / b for t, b in zip(top, bottom, strict=True) if t and b]
    if not pairs:
        return {"median": None}
    return {
        "median": round(statistics.median(pairs), 2),
        "spread": [round(min(pairs), 2), round(max(pairs), 2)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0, help="measuring window per step")
    parser.add_argument("--sizes", default="1,3,6,12", help="replicas, in increasing steps")
    parser.add_argument("--handlers", default="blocking,awaiting")
    args = parser.parse_args()
    sizes = sorted({int(s) for s in args.sizes.split(",")})
    handlers = args.handlers.split(",")
    runs: dict[str, dict[str, dict[int, list[float | None]]]] = {
        h: {m: {s: [] for s in sizes} for m in MODES} for h in handlers
    }
    with (
        ephemeral_kafka(progress=log) as bootstrap,
        tempfile.TemporaryDirectory(prefix="bench-queue-") as folder,
    ):
        settings = PipelineSettings(bootstrap_servers=bootstrap, client="confluent")
        for round_no in range(args.rounds):
            order = MODES if round_no % 2 == 0 else tuple(reversed(MODES))
            for handler in handlers:
                for mode in order:
                    rates = one_mode(settings, handler, mode, sizes, args.seconds, Path(folder))
                    for size in sizes:
                        runs[handler][mode][size].append(rates.get(size))
    figures: dict[str, object] = {
        "work_ms": 20,
        "partitions": JOBS.partitions,
        "awaiting": {"stream_lanes": AWAITING_LANES, "queue_slots": AWAITING_SLOTS},
        "rounds": args.rounds,
        "seconds": args.seconds,
    }
    for handler in handlers:
        modes = runs[handler]
        figures[handler] = {
            "records_per_s": {
                mode: {size: summary(modes[mode][size]) for size in sizes} for mode in MODES
            },
            "queue_over_stream": {
                size: ratio(modes["queue"][size], modes["stream"][size]) for size in sizes
            },
            "queue_top_over_3": (
                ratio(modes["queue"][sizes[-1]], modes["queue"][3]) if 3 in sizes else None
            ),
        }
    figures["clients"] = {
        "confluent_kafka": importlib.metadata.version("confluent-kafka"),
        "librdkafka": confluent_kafka.libversion()[0],
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
