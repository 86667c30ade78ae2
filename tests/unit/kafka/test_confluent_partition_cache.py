"""The confluent producer's partition counts: read once, refreshed, kept when a refresh fails.

A metadata request per batch cost a round trip each, and during a broker
bounce its timeout failed the batch and stopped the worker.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from pipeline.kafka.confluent import producer as confluent_producer
from pipeline.kafka.confluent.producer import ConfluentProducer
from pipeline.kafka.port import KafkaClientError


class Metadata:
    """Stands in for librdkafka's Producer.list_topics: counts calls, fails when told."""

    def __init__(self) -> None:
        self.calls = 0
        self.down = False
        self.partitions = 6

    def list_topics(self, topic: str, timeout: float) -> Any:
        self.calls += 1
        if self.down:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "Failed to get metadata"))
        found = SimpleNamespace(error=None, partitions=dict.fromkeys(range(self.partitions)))
        return SimpleNamespace(topics={topic: found})


def producer_on(metadata: Metadata) -> ConfluentProducer:
    producer = ConfluentProducer({"bootstrap.servers": "127.0.0.1:1"}, 1 << 20)
    producer._client = metadata  # type: ignore[assignment]
    return producer


async def test_a_count_is_read_once_per_max_age(monkeypatch: pytest.MonkeyPatch) -> None:
    metadata = Metadata()
    producer = producer_on(metadata)
    for _ in range(50):
        assert await producer.partition_count("orders") == 6
    assert metadata.calls == 1
    metadata.partitions = 8  # `topics apply` grew it
    monkeypatch.setattr(confluent_producer, "PARTITIONS_MAX_AGE_S", 0.0)
    assert await producer.partition_count("orders") == 8
    assert metadata.calls == 2


async def test_a_refresh_that_fails_keeps_the_count_it_had(monkeypatch: pytest.MonkeyPatch) -> None:
    metadata = Metadata()
    producer = producer_on(metadata)
    assert await producer.partition_count("orders") == 6
    metadata.down = True
    monkeypatch.setattr(confluent_producer, "PARTITIONS_MAX_AGE_S", 0.0)
    assert await producer.partition_count("orders") == 6  # the broker bounce is survived
    with pytest.raises(KafkaClientError, match="_TIMED_OUT"):
        await producer.partition_count("payments")  # never read: nothing to fall back on
