"""Fixtures the integration tests share."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.dev.localkafka import LocalKafka
from pipeline.dev.registry import ephemeral_registry
from pipeline.paths import cache_dir
from tests.integration.harness import harness
from tests.support import THROWAWAY_STOP_S, log_progress

__all__ = ["harness", "own_broker", "schema_registry", "three_brokers"]


@pytest.fixture(scope="session")
def schema_registry() -> Iterator[str]:
    """A real Confluent-compatible registry (Apicurio, built by the project's files): its URL.

    SCHEMA_REGISTRY_URL names an existing one instead.
    """
    with ephemeral_registry(progress=log_progress) as url:
        yield url


@pytest.fixture(scope="session")
def three_brokers() -> Iterator[LocalKafka]:
    """A local 3-broker cluster of the tests' own: they kill its brokers.

    Shared by the broker-failure and chaos tests (one start, ~40 s); a test
    that leaves a node dead is followed by `up`, which restarts it.
    """
    with throwaway_cluster("3brokers", brokers=3, heap_mb=320) as cluster:
        yield cluster


@pytest.fixture
def own_broker() -> Iterator[LocalKafka]:
    """A single broker of one test's own: the test stops it and starts it again."""
    with throwaway_cluster("own-broker", brokers=1, heap_mb=384) as cluster:
        yield cluster


@contextlib.contextmanager
def throwaway_cluster(name: str, brokers: int, heap_mb: int) -> Iterator[LocalKafka]:
    """A local cluster in a temporary folder, stopped at once afterwards (nothing kept)."""
    with tempfile.TemporaryDirectory(prefix=f"pipeline-test-{name}-") as folder:
        cluster = LocalKafka(Path(folder), cache_dir(), heap_mb=heap_mb)
        try:
            cluster.up(brokers=brokers, progress=log_progress)
            yield cluster
        finally:
            cluster.down(timeout_s=THROWAWAY_STOP_S)
