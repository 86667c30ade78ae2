"""Shared fixtures: a real Kafka for the session, unique topics per test.

The cluster comes from KAFKA_BOOTSTRAP if set, else from testcontainers if a
Docker engine answers, else from the local Maven jars (this machine kind).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.dev.localkafka import LocalKafka
from pipeline.paths import cache_dir
from pipeline.settings import PipelineSettings
from tests.support import THROWAWAY_STOP_S, log_progress


def _docker_kafka() -> contextlib.AbstractContextManager[str] | None:
    """A broker in a container (tests/docker_kafka.py) where a Docker engine answers, else None."""
    try:
        import docker  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        docker.from_env().ping()
    except Exception:  # noqa: BLE001 - no engine is the normal case here
        return None
    from tests.docker_kafka import docker_kafka

    return docker_kafka()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    existing = os.environ.get("KAFKA_BOOTSTRAP")
    if existing:
        yield existing
        return
    docker_kafka = _docker_kafka()
    if docker_kafka is not None:
        with docker_kafka as bootstrap:
            yield bootstrap
        return
    with tempfile.TemporaryDirectory(prefix="pipeline-test-kafka-") as folder:
        cluster = LocalKafka(Path(folder), cache_dir(), heap_mb=512)
        try:
            yield cluster.up(brokers=1, progress=log_progress).bootstrap
        finally:
            cluster.down(timeout_s=THROWAWAY_STOP_S)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """POSTGRES_URL if set, else a throwaway local PostgreSQL with the migrations applied."""
    from pipeline.dev.localpg import ephemeral_postgres
    from pipeline.kafka.aiokafka.probe import run_sync
    from pipeline.settings import DatabaseTuning
    from pipeline.stores.migrations import migrate

    with ephemeral_postgres(progress=log_progress) as url:
        run_sync(migrate(url, DatabaseTuning().migrations_dir))
        yield url


@pytest.fixture
def settings(kafka_bootstrap: str) -> PipelineSettings:
    return PipelineSettings(bootstrap_servers=kafka_bootstrap)


@pytest.fixture
def unique() -> str:
    """A prefix no other test uses, so tests never read each other's records."""
    return f"t{uuid.uuid4().hex[:10]}."
