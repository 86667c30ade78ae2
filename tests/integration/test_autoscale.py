"""Lag from the brokers, and the supervisor scaling real worker processes."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from pipeline.kafka.aiokafka.probe import run_sync
from pipeline.kafka.connect import connect
from pipeline.kafka.partitioner import kafka_partition
from pipeline.paths import project_dir
from pipeline.publishing.producer import EventProducer
from pipeline.reading.offsets import end_offsets
from pipeline.resilience.ratelimit import TokenBucket
from pipeline.scaling.worker_process import PIPELINE
from tests.integration.harness import Harness, keyed_events
from tests.integration.processors import PROCESSORS, SOURCE, Keyed
from tests.replicas import poll_until
from tests.support import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def lag_tool(harness: Harness, group: str) -> dict[int, int]:
    result = run_cli(
        "lag",
        "--group",
        group,
        "--topic",
        harness.source.name,
        "--json",
        "--interval",
        "0.3",
        env=harness.env,
    )
    assert result.returncode == 0, result.stderr
    sample = json.loads(result.stdout)
    return {p["partition"]: p["lag"] for p in sample["partitions"]}


def test_the_lag_tool_matches_an_independent_count_also_while_paused(harness: Harness) -> None:
    replica = harness.start("slow", "r0")
    replica.wait_ready()
    slow_events = [Keyed(key="k-slow", seq=i, mode="slow") for i in range(3000)]
    fast_events = keyed_events(4000, keys=200)
    harness.publish(slow_events + fast_events)
    produced = Counter(
        kafka_partition(e.key.encode(), SOURCE.partitions) for e in slow_events + fast_events
    )
    slow_partition = kafka_partition(b"k-slow", SOURCE.partitions)
    poll_until(lambda: replica.metric("pipeline_partition_paused") >= 1, 60, what="a pause")

    def independent() -> dict[int, int]:
        processed = run_sync(end_offsets(connect(harness.settings), harness.output.name))
        return {p: produced.get(p, 0) - processed.get(p, 0) for p in range(SOURCE.partitions)}

    group = harness.prefix + "slow"
    batch = PROCESSORS["slow"].batch_records
    before = independent()
    reported = lag_tool(harness, group)
    after = independent()
    assert replica.metric("pipeline_partition_paused") >= 1, "the partition resumed: proved nothing"
    assert reported[slow_partition] > 1000
    for partition in range(SOURCE.partitions):
        # Commits trail outputs by at most a batch and a commit interval.
        low, high = after[partition], before[partition] + batch
        assert low <= reported[partition] <= high, (partition, before, reported, after)

    # A group with no member running: the committed offsets still tell.
    assert replica.stop() == 0
    assert lag_tool(harness, group) == independent()


def publish_at(harness: Harness, phases: list[tuple[float, float]], ids: list[str]) -> None:
    """Publish keyed events at `rate` for `seconds`, phase after phase."""

    async def run() -> None:
        sequence = 0
        async with EventProducer(harness.settings) as producer:
            for rate, seconds in phases:
                bucket = TokenBucket(rate)
                ends = time.monotonic() + seconds
                while time.monotonic() < ends:
                    chunk = max(1, int(rate / 20))
                    await bucket.acquire(chunk)
                    events = [
                        Keyed(key=f"k{(sequence + i) % 500}", seq=sequence + i)
                        for i in range(chunk)
                    ]
                    sequence += chunk
                    deliveries = await producer.publish_many(harness.source, events)
                    ids.extend(d.event_id for d in deliveries)

    run_sync(run())


def statuses(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_a_step_in_load_scales_up_drains_and_scales_back_down(
    harness: Harness, tmp_path: Path
) -> None:
    status_file = tmp_path / "status.jsonl"
    supervisor = subprocess.Popen(
        [
            PIPELINE,
            "scale",
            "paced",
            "--min",
            "1",
            "--max",
            "4",
            "--target-drain",
            "10s",
            "--interval",
            "1s",
            "--scale-down-window",
            "8s",
            "--replica-rate",
            "200",
            "--status-file",
            str(status_file),
            "--log-dir",
            str(tmp_path / "workers"),
        ],
        cwd=project_dir(),
        env={**os.environ, **harness.env},
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "supervisor.log", "wb"),  # noqa: SIM115
    )
    ids: list[str] = []
    try:
        poll_until(lambda: statuses(status_file), 60, what="the supervisor's first decision")
        # 100/s fits one replica; 600/s needs three or four.
        publisher = threading.Thread(target=publish_at, args=(harness, [(100, 8), (600, 20)], ids))
        publisher.start()
        poll_until(
            lambda: any(s["replicas"] >= 3 for s in statuses(status_file)),
            60,
            what="a scale-up to 3 or more",
        )
        publisher.join()
        harness.wait_outputs(len(ids), timeout_s=120)
        poll_until(
            lambda: (s := statuses(status_file)) and s[-1]["replicas"] == 1,
            60,
            what="the scale-down after the window",
        )
    finally:
        supervisor.terminate()
        supervisor.wait(timeout=90)
    history = statuses(status_file)
    peak = max(int(s["replicas"]) for s in history)  # type: ignore[call-overload]
    assert 3 <= peak <= 4
    # One step up, sized for its own stall: not 1 → 2 → 3, each a rebalance.
    sizes = [int(s["desired"]) for s in history]  # type: ignore[call-overload]
    first_up = next(after for before, after in itertools.pairwise(sizes) if after > before)
    assert first_up >= 3, sizes
    # ... whose replicas joined through one gate, all of them at it when it opened.
    supervisor_log = (tmp_path / "supervisor.log").read_text()
    opened = re.findall(r"step step-(\d+): (\d+) of (\d+) at the gate", supervisor_log)
    assert ("2", str(first_up - 1), str(first_up - 1)) in opened, supervisor_log[-3000:]
    assert history[-1]["lag"] == 0
    assert supervisor.returncode == 0, (tmp_path / "supervisor.log").read_text()[-3000:]

    outputs = harness.outputs()
    seen = Counter(event.source_id for _, _, event in outputs)
    assert set(seen) == set(ids)
    duplicates = sum(count - 1 for count in seen.values())
    # Scale-down drains before leaving: at worst one queue per partition is redone.
    assert duplicates <= SOURCE.partitions * PROCESSORS["paced"].queue_records
    print(f"peak {peak} replicas, {duplicates} duplicates over {len(ids)} events")


def test_recommend_only_counts_group_members_and_exports_desired_replicas(
    harness: Harness, tmp_path: Path
) -> None:
    from pipeline.dev.processes import free_ports
    from pipeline.scaling.worker_process import parse_metrics

    port = free_ports(1)[0]
    status_file = tmp_path / "status.jsonl"
    replicas = [harness.start("paced", f"r{i}") for i in range(2)]
    for replica in replicas:
        replica.wait_ready()
    supervisor = subprocess.Popen(
        [
            PIPELINE,
            "scale",
            "paced",
            "--recommend-only",
            "--interval",
            "1s",
            "--metrics-port",
            str(port),
            "--status-file",
            str(status_file),
        ],
        cwd=project_dir(),
        env={**os.environ, **harness.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        poll_until(lambda: len(statuses(status_file)) >= 2, 60, what="two decisions")
        assert statuses(status_file)[-1]["replicas"] == 2  # the group's members, not processes

        def desired() -> float | None:
            import urllib.request

            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
                return parse_metrics(reply.read().decode()).get("pipeline_desired_replicas")

        assert desired() == statuses(status_file)[-1]["desired"]
    finally:
        supervisor.terminate()
        assert supervisor.wait(timeout=60) == 0
    assert all(replica.running for replica in replicas), "recommend-only must not stop workers"
