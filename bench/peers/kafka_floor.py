"""Kafka's own end-to-end latency on the same broker: the floor every contestant stands on.

`org.apache.kafka.tools.EndToEndLatency` (from the broker's own jars, so
nothing more to fetch) produces one record at a time with acks=all and
consumes it back before sending the next: one hop, no batching to wait for.
A consume-transform-produce pipeline is about one and a half of these.
"""

from __future__ import annotations

import re
import subprocess

from pipeline import paths
from pipeline.dev.kafka_jars import java_executable, resolve_classpath

PERCENTILES = re.compile(r"Percentiles: 50th = (\d+), 99th = (\d+), 99\.9th = (\d+)")


def kafka_floor(
    bootstrap: str, topic: str, records: int = 5000, record_bytes: int = 200
) -> dict[str, int]:
    """p50, p99, p99.9 (ms) of `records` round trips through `topic` (one partition, made first:
    the project's brokers create no topic on demand)."""
    command = [
        java_executable(),
        "-Xmx256m",
        "-cp",
        resolve_classpath(paths.cache_dir()),
        "org.apache.kafka.tools.EndToEndLatency",
        "--bootstrap-server",
        bootstrap,
        "--topic",
        topic,
        "--num-records",
        str(records),
        "--producer-acks",
        "all",
        "--record-size",
        str(record_bytes),
    ]
    answer = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    found = PERCENTILES.search(answer.stdout)
    if answer.returncode != 0 or found is None:
        raise RuntimeError(
            f"EndToEndLatency failed (exit {answer.returncode}): "
            f"{(answer.stdout + answer.stderr)[-2000:]}"
        )
    p50, p99, p999 = (int(g) for g in found.groups())
    return {"p50_ms": p50, "p99_ms": p99, "p999_ms": p999}
