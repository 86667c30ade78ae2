"""Fixtures the unit tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from confluent_kafka.schema_registry._sync.mock_schema_registry_client import (
    MockSchemaRegistryClient,
)

from pipeline.wire.registry import SchemaRegistry, use_registry


@pytest.fixture
def registry() -> Iterator[SchemaRegistry]:
    """A fresh mock schema registry as the process's, the previous one put back after."""
    fresh = SchemaRegistry(MockSchemaRegistryClient({"url": "mock://registry"}), "mock://registry")
    previous = use_registry(fresh)
    yield fresh
    use_registry(previous)
