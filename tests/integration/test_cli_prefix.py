"""Commands name catalogue topics the same way whatever PIPELINE_TOPIC_PREFIX is."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from aiokafka import AIOKafkaProducer

from pipeline.kafka.aiokafka.probe import run_sync
from pipeline.kafka.connect import connect
from pipeline.ops.topics import ensure_topics
from pipeline.reading.offsets import end_offsets
from pipeline.settings import PipelineSettings
from tests.support import run_cli
from topics import CATALOGUE

pytestmark = pytest.mark.integration


def test_dlq_inspect_and_offsets_reset_find_the_prefixed_topic(
    settings: PipelineSettings, unique: str
) -> None:
    env = {
        "PIPELINE_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "PIPELINE_TOPIC_PREFIX": unique,
        "PIPELINE_CATALOGUE_MODULE": "tests.integration.catalogues.v1",
    }
    assert run_cli("topics", "apply", env=env).returncode == 0

    async def dead_letter() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
        await producer.start()
        try:
            await producer.send_and_wait(
                unique + "samples.dlq",
                None,
                key=b"k",
                headers=[("dlq-error-type", b"UndecodableRecordError"), ("dlq-processor", b"p")],
            )
        finally:
            await producer.stop()

    run_sync(dead_letter())
    inspected = run_cli("dlq", "inspect", "--topic", "samples.dlq", "--json", env=env, timeout=60)
    assert inspected.returncode == 0, inspected.stderr
    summary = json.loads(inspected.stdout)
    assert summary["topic"] == unique + "samples.dlq"
    assert summary["total"] == 1
    sample = summary["samples"][0]
    assert sample["key"] == "k" and sample["value"] is None  # a tombstone shown as null
    assert sample["headers"]["dlq-error-type"] == "UndecodableRecordError"

    reset = run_cli(
        "offsets",
        "reset",
        "--group",
        "g1",
        "--topic",
        "samples",
        "--to-earliest",
        "--dry-run",
        env=env,
    )
    assert reset.returncode == 0, reset.stderr
    assert f"group g1 on {unique}samples" in " ".join(reset.stdout.split())


def test_the_load_generator_publishes_under_the_prefix(
    settings: PipelineSettings, unique: str
) -> None:
    specs = [spec.with_name(unique + spec.name) for spec in CATALOGUE]
    run_sync(ensure_topics(connect(settings), specs))
    env = {
        "PIPELINE_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "PIPELINE_TOPIC_PREFIX": unique,
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "producers.loadgen",
            "--rate",
            "200",
            "--duration",
            "1",
            "--customers",
            "50",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"to {unique}orders" in result.stderr
    assert sum(run_sync(end_offsets(connect(settings), unique + "orders")).values()) >= 150
    assert sum(run_sync(end_offsets(connect(settings), unique + "customers")).values()) == 50
