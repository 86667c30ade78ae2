"""Every command that talks to a consumer group, first thing on a freshly started cluster.

A cluster that has just started has no `__consumer_offsets` yet: the first
group request creates it, and until its partitions have leaders every
broker answers NOT_COORDINATOR. librdkafka's AdminClient crashed the whole
process on that answer (pipeline.kafka.confluent.commits); the suite's
clusters are warm by the time a group command runs, so it never met it.

One round: a new single-node cluster in a temporary folder, the topics,
then `worker`, `replay`, `lag`, `offsets reset`, `dlq redrive` and `scale`
started at once on the confluent client, each checked to end (or answer)
without dying of a signal. `tests/integration/test_fresh_cluster.py` runs
one round; this module run as a command repeats it, and on a second fresh
cluster per round calls the AdminClient's ListConsumerGroupOffsets the way
the adapter used to, to count how often librdkafka itself still crashes
(a race: some rounds its answer is COORDINATOR_LOAD_IN_PROGRESS instead):

    python -m tests.integration.fresh_cluster --rounds 10
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pipeline.dev.localkafka import LocalKafka
from pipeline.kafka.aiokafka.probe import run_sync
from pipeline.kafka.connect import connect
from pipeline.ops.topics import ensure_topics
from pipeline.paths import cache_dir
from pipeline.publishing.producer import EventProducer
from pipeline.scaling.worker_process import PIPELINE
from pipeline.settings import PipelineSettings
from tests.integration.processors import SOURCE, TOPICS, Keyed
from tests.support import THROWAWAY_STOP_S

PROCESSOR = "passthrough"
ADMIN_CRASH_PROBE = """
from confluent_kafka import ConsumerGroupTopicPartitions
from confluent_kafka.admin import AdminClient

admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
futures = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions("probe")])
try:
    futures["probe"].result()
except Exception as exc:
    print("refused:", exc)
"""


@dataclass(frozen=True)
class Outcome:
    command: str
    returncode: int
    log_tail: str
    answered: bool
    """Ended with 0, or (worker, scale) was seen ready before it was stopped."""

    @property
    def crashed(self) -> bool:
        """Killed by a signal it did not ask for (SIGTERM is how the long ones are stopped)."""
        return self.returncode < 0 and self.returncode != -signal.SIGTERM


def _pipeline(*args: str) -> list[str]:
    return [PIPELINE, *args]


def _tail(path: Path) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-30:]) if path.exists() else ""


def _get(url: str) -> str | None:
    """The body of a 200 answer, None for anything else (not up yet, refused, not ready)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(response.read().decode()) if response.status == 200 else None
    except OSError:
        return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def commands_on(bootstrap: str, folder: Path) -> list[Outcome]:
    """Start every group command at once on a cluster nobody has asked about groups yet."""
    env = {
        **os.environ,
        "PIPELINE_BOOTSTRAP_SERVERS": bootstrap,
        "PIPELINE_CLIENT": "confluent",
        "PIPELINE_PROCESSORS_MODULE": "tests.integration.processors",
        "PIPELINE_STATE_DIR": str(folder / "state"),
    }
    env.pop("PIPELINE_TOPIC_PREFIX", None)
    worker_port, scale_port = _free_port(), _free_port()
    bounded = {
        "replay": _pipeline("replay", "--processor", PROCESSOR, "--from", "0", "--name", "fresh"),
        "lag": _pipeline("lag", "--processor", PROCESSOR, "--no-age"),
        "offsets reset": _pipeline(
            "offsets", "reset", "--group", "fresh-reset", "--topic", SOURCE.name, "--to-earliest"
        ),
        "dlq redrive": _pipeline("dlq", "redrive", "--topic", SOURCE.dlq_name),
    }
    lasting = {
        "worker": _pipeline(
            "worker", PROCESSOR, "--replica-id", "fresh", "--health-port", str(worker_port)
        ),
        "scale": _pipeline(
            "scale",
            PROCESSOR,
            "--min",
            "1",
            "--max",
            "1",
            "--interval",
            "1s",
            "--metrics-port",
            str(scale_port),
            "--log-dir",
            str(folder / "scale"),
        ),
    }
    started = {}
    for name, argv in {**lasting, **bounded}.items():
        log_path = folder / f"{name.replace(' ', '-')}.log"
        log_file = log_path.open("w")
        process = subprocess.Popen(argv, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        started[name] = (process, log_path)
    outcomes = []
    deadline = time.monotonic() + 90
    for name in bounded:
        process, log_path = started[name]
        try:
            code = process.wait(max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        outcomes.append(Outcome(name, code, _tail(log_path), code == 0))
    ready = {
        "worker": lambda: _get(f"http://127.0.0.1:{worker_port}/readyz") is not None,
        "scale": lambda: (
            "pipeline_desired_replicas" in (_get(f"http://127.0.0.1:{scale_port}/metrics") or "")
        ),
    }
    for name in lasting:
        process, log_path = started[name]
        seen = False
        while process.poll() is None and time.monotonic() < deadline:
            if ready[name]():
                seen = True
                break
            time.sleep(0.2)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
        outcomes.append(Outcome(name, process.wait(), _tail(log_path), seen))
    return outcomes


def admin_call_crashes(bootstrap: str) -> bool:
    """Whether librdkafka's own ListConsumerGroupOffsets still dies on this cluster."""
    script = f"BOOTSTRAP = {bootstrap!r}\n{ADMIN_CRASH_PROBE}"
    code = subprocess.run([sys.executable, "-c", script], timeout=60, check=False).returncode
    return code == -signal.SIGSEGV


async def _publish(settings: PipelineSettings) -> None:
    async with EventProducer(settings) as producer:
        await producer.publish_many(SOURCE, [Keyed(key=f"k{n}", seq=n) for n in range(100)])


def one_round(probe_admin: bool = False) -> tuple[list[Outcome], bool | None]:
    """A fresh cluster, its topics, every group command at once; the AdminClient probe after."""
    with tempfile.TemporaryDirectory(prefix="pipeline-fresh-") as name:
        folder = Path(name)
        cluster = LocalKafka(folder / "kafka", cache_dir())
        bootstrap = cluster.up().bootstrap
        try:
            settings = PipelineSettings(bootstrap_servers=bootstrap)
            run_sync(ensure_topics(connect(settings), TOPICS))
            run_sync(_publish(settings))  # a replay of an empty topic would not ask the group
            outcomes = commands_on(bootstrap, folder)
            crashes = None
            if probe_admin:
                # A second fresh cluster: this one's coordinator is elected by now.
                crashes = _probe_on_new_cluster(folder)
            return outcomes, crashes
        finally:
            cluster.down(timeout_s=THROWAWAY_STOP_S)


def _probe_on_new_cluster(folder: Path) -> bool:
    cluster = LocalKafka(folder / "probe-kafka", cache_dir())
    bootstrap = cluster.up().bootstrap
    try:
        return admin_call_crashes(bootstrap)
    finally:
        cluster.down(timeout_s=THROWAWAY_STOP_S)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    import confluent_kafka

    crashed = unanswered = admin_crashes = 0
    for round_number in range(1, args.rounds + 1):
        outcomes, admin_crashed = one_round(probe_admin=True)
        bad = [o for o in outcomes if o.crashed]
        crashed += len(bad)
        unanswered += sum(not o.answered for o in outcomes)
        admin_crashes += bool(admin_crashed)
        summary = {o.command: o.returncode for o in outcomes}
        print(
            f"round {round_number}: {json.dumps(summary)}; the raw AdminClient call "
            f"{'crashed' if admin_crashed else 'did not crash'}",
            flush=True,
        )
        for outcome in bad:
            print(f"  {outcome.command} died of a signal:\n{outcome.log_tail}", flush=True)
        for outcome in outcomes:
            if not outcome.answered and not outcome.crashed:
                print(f"  {outcome.command} did not answer:\n{outcome.log_tail}", flush=True)
    figures = {
        "rounds": args.rounds,
        "crashes": crashed,
        "unanswered": unanswered,
        "raw_admin_call_crashes": admin_crashes,
        "confluent_kafka": importlib.metadata.version("confluent-kafka"),
        "librdkafka": confluent_kafka.libversion()[0],
    }
    print(json.dumps(figures))
    return 1 if crashed or unanswered else 0


if __name__ == "__main__":
    raise SystemExit(main())
