"""Helpers for integration tests: create topics, read them back, run the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from pipeline.settings import PipelineSettings

PIPELINE = str(Path(sys.executable).parent / "pipeline")


def log_progress(message: str) -> None:
    print(f"[kafka] {message}", file=sys.stderr)


async def read_all(
    settings: PipelineSettings, topic: str, timeout_s: float = 60.0
) -> list[ConsumerRecord]:
    """Every record of every partition, from the start to the end offsets seen now."""
    consumer = AIOKafkaConsumer(
        **settings.client_kwargs(),
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [
                TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []
            ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout_s
        remaining = {tp for tp in partitions if end[tp] > 0}
        while remaining:
            if time.monotonic() > deadline:
                raise AssertionError(f"reading {topic} did not reach the end offsets {end}")
            batches = await consumer.getmany(timeout_ms=500, max_records=50_000)
            for batch in batches.values():
                records.extend(batch)
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
        return records
    finally:
        await consumer.stop()


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    input_text: str | None = None,
    timeout: float = 180,
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [PIPELINE, *args],
        capture_output=True,
        text=True,
        env=full_env,
        input=input_text,
        timeout=timeout,
        check=False,
    )
