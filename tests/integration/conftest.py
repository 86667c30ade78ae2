"""Fixtures the integration tests share."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.dev.localkafka import LocalKafka
from pipeline.dev.registry import ephemeral_registry
from pipeline.paths import cache_dir
from tests.integration.harness import harness
from tests.support import THROWAWAY_STOP_S, log_progress

__all__ = ["harness", "schema_registry", "three_brokers"]


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
    with tempfile.TemporaryDirectory(prefix="pipeline-test-3brokers-") as folder:
        cluster = LocalKafka(Path(folder), cache_dir(), heap_mb=320)
        try:
            cluster.up(brokers=3, progress=log_progress)
            yield cluster
        finally:
            cluster.down(timeout_s=THROWAWAY_STOP_S)
