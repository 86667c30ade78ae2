"""The HTTP ingest gateway under sustained load, against publishing through EventProducer directly.

`pipeline gateway` with 1 and 2 worker processes; single-event and batch
(100 events) requests; 1, 20 and 50 keep-alive connections, each held for
`--seconds`. The load comes from bench/http_load.py in a process of its
own. The baseline is 50 tasks calling EventProducer.publish in one process;
it and the gateway at 50 connections are run `--rounds` times interleaved,
and their ratio is reported as median and spread.

Prints a table and, last, one JSON line:
{"workers_1": {...}, "workers_2": {...}, "batch_workers_2": {...}, "c50_workers_1": {...},
 "direct_c50": {...}, "c50_workers_1_vs_direct": {"median": r, "min": r, "max": r},
 "scenarios": {...}}
where workers_N is single events at 20 connections, batch_workers_2 batches at 20, and each
entry has events_per_s, p50_ms, p99_ms and rejected (the share of non-2xx answers).

Run: .venv/bin/python bench/gateway.py [--seconds 30] [--rounds 3]
(starts a private broker unless KAFKA_BOOTSTRAP is set)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.peers.environment import versions_of_every_contestant
from pipeline.dev.localkafka import ephemeral_kafka
from pipeline.dev.processes import free_ports
from pipeline.kafka.connect import connect
from pipeline.ops.topics import ensure_topics
from pipeline.paths import project_dir
from pipeline.scaling.worker_process import PIPELINE
from pipeline.settings import PipelineSettings
from producers.loadgen import OrderGenerator
from topics import CATALOGUE

BATCH_EVENTS = 100
CONNECTIONS = (1, 20, 50)
LOAD = [sys.executable, str(Path(__file__).resolve().parent / "http_load.py")]


def write_bodies(folder: Path) -> tuple[Path, Path]:
    """Request bodies: single orders, and batches of BATCH_EVENTS, as JSON lines."""
    orders = [o.model_dump_json() for o in OrderGenerator(10_000).batch(2000)]
    single = folder / "single.jsonl"
    single.write_text("\n".join(orders) + "\n")
    batches = folder / "batch.jsonl"
    batches.write_text(
        "\n".join(
            "[" + ",".join(orders[i : i + BATCH_EVENTS]) + "]"
            for i in range(0, len(orders), BATCH_EVENTS)
        )
        + "\n"
    )
    return single, batches


class Gateway:
    def __init__(self, bootstrap: str, prefix: str, workers: int, log: Path) -> None:
        self.port = free_ports(1)[0]
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "PIPELINE_BOOTSTRAP_SERVERS": bootstrap,
            "PIPELINE_TOPIC_PREFIX": prefix,
        }
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            [PIPELINE, "gateway", "--port", str(self.port), "--workers", str(workers)],
            cwd=project_dir(),
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the gateway did not become ready; see {log}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


def load(args: list[str]) -> dict[str, object]:
    result = subprocess.run([*LOAD, *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"the load generator failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def http(
    gateway: Gateway, bodies: Path, batch: bool, connections: int, seconds: float
) -> dict[str, object]:
    path = "/v1/topics/orders/events" + (":batch" if batch else "")
    return load(
        [
            "--url",
            gateway.url + path,
            "--bodies",
            str(bodies),
            "--events-per-request",
            str(BATCH_EVENTS if batch else 1),
            "--connections",
            str(connections),
            "--seconds",
            str(seconds),
        ]
    )


def direct(bootstrap: str, topic: str, seconds: float) -> dict[str, object]:
    return load(
        ["--direct", bootstrap, "--topic", topic, "--connections", "50", "--seconds", str(seconds)]
    )


def row(name: str, result: dict[str, object]) -> str:
    return (
        f"{name:28s} {result['events_per_s']:>10,.0f} ev/s  p50 {result['p50_ms']:>7.1f} ms  "
        f"p99 {result['p99_ms']:>7.1f} ms  rejected {float(result['rejected']):.2%}  "  # type: ignore[arg-type]
        f"{result['statuses']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=30, help="each scenario's duration")
    parser.add_argument("--rounds", type=int, default=3, help="gateway c50 vs direct pairs")
    parser.add_argument("--workers", default="1,2", help="gateway process counts to try")
    args = parser.parse_args()
    prefix = f"gw{uuid.uuid4().hex[:6]}."
    with (
        ephemeral_kafka(progress=lambda m: print(f"[kafka] {m}", file=sys.stderr)) as bootstrap,
        tempfile.TemporaryDirectory(prefix="bench-gateway-") as folder,
    ):
        settings = PipelineSettings(bootstrap_servers=bootstrap)
        specs = [spec.with_name(prefix + spec.name) for spec in CATALOGUE.with_dlqs()]
        asyncio.run(ensure_topics(connect(settings), specs))
        single, batches = write_bodies(Path(folder))
        log = Path(folder) / "gateway.log"
        scenarios: dict[str, dict[str, object]] = {}
        ratios: list[float] = []
        for workers in [int(w) for w in args.workers.split(",")]:
            gateway = Gateway(bootstrap, prefix, workers, log)
            try:
                for batch in (False, True):
                    for connections in CONNECTIONS:
                        name = f"{'batch' if batch else 'single'}_c{connections}_workers_{workers}"
                        scenarios[name] = http(
                            gateway, batches if batch else single, batch, connections, args.seconds
                        )
                        print(row(name, scenarios[name]), file=sys.stderr)
                if workers == 1:
                    for round_ in range(args.rounds):
                        baseline = direct(bootstrap, prefix + "orders", args.seconds)
                        print(row(f"direct_c50 (round {round_ + 1})", baseline), file=sys.stderr)
                        ours = (
                            scenarios["single_c50_workers_1"]
                            if round_ == 0
                            else http(gateway, single, False, 50, args.seconds)
                        )
                        if round_:
                            print(
                                row(f"single_c50_workers_1 (round {round_ + 1})", ours),
                                file=sys.stderr,
                            )
                        ratios.append(
                            float(ours["events_per_s"]) / max(1.0, float(baseline["events_per_s"]))
                        )  # type: ignore[arg-type]
                        scenarios.setdefault("direct_c50", baseline)
            finally:
                gateway.stop()
        summary: dict[str, object] = {
            "workers_1": scenarios.get("single_c20_workers_1"),
            "workers_2": scenarios.get("single_c20_workers_2"),
            "batch_workers_2": scenarios.get("batch_c20_workers_2"),
            "c50_workers_1": scenarios.get("single_c50_workers_1"),
            "direct_c50": scenarios.get("direct_c50"),
            "scenarios": scenarios,
        }
        if ratios:
            summary["c50_workers_1_vs_direct"] = {
                "median": round(statistics.median(ratios), 3),
                "min": round(min(ratios), 3),
                "max": round(max(ratios), 3),
                "rounds": [round(r, 3) for r in ratios],
            }
        print(json.dumps({**summary, "clients": versions_of_every_contestant()}))


if __name__ == "__main__":
    main()
