"""EventProducer against a real broker: offsets, partitions, headers, errors."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from uuid import uuid4

import pytest

from pipeline.dev.kafka_jars import java_executable, resolve_classpath
from pipeline.errors import MissingKeyError, WrongEventTypeError
from pipeline.kafka.connect import connect
from pipeline.kafka.metadata import TopicNotOnClusterError
from pipeline.ops.topics import ensure_topics
from pipeline.paths import cache_dir
from pipeline.publishing.producer import EventProducer
from pipeline.settings import PipelineSettings, ProducerTuning
from pipeline.wire.codec import HEADER_EVENT_ID, decode_value, header_value
from tests.support import read_all
from tests.unit.models import OPTIONAL_KEY_SPEC, SAMPLE_SPEC, Other, Sample

pytestmark = [pytest.mark.integration, pytest.mark.both_clients]


def sample(key: str, count: int = 0) -> Sample:
    return Sample(
        entity_id=key,
        happened_at=datetime.now(UTC),
        amount=Decimal("12.34"),
        reference=uuid4(),
        note="x" * 100,
        count=count,
    )


async def topic_for(settings: PipelineSettings, unique: str, partitions: int = 6):  # type: ignore[no-untyped-def]
    spec = dataclasses.replace(
        SAMPLE_SPEC, name=unique + "samples", partitions=partitions, replication_factor=1
    )
    await ensure_topics(connect(settings), [spec])
    return spec


async def test_publish_many_returns_where_each_event_was_stored(
    settings: PipelineSettings, unique: str
) -> None:
    spec = await topic_for(settings, unique)
    events = [sample(f"k{i % 37}", count=i) for i in range(3000)]
    async with EventProducer(settings) as producer:
        deliveries = await producer.publish_many(spec, events)
    records = await read_all(connect(settings), spec.name)
    assert len(records) == len(events)
    stored = {(r.partition, r.offset): r for r in records}
    for event, delivery in zip(events, deliveries, strict=True):
        record = stored[(delivery.partition, delivery.offset)]
        assert header_value(record.headers, HEADER_EVENT_ID) == delivery.event_id
        assert record.key == event.entity_id.encode()
        assert decode_value(spec, record.value) == event
    # Order per key: a key's events sit in one partition in publish order.
    by_key: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for event, delivery in zip(events, deliveries, strict=True):
        by_key[event.entity_id].append((delivery.partition, delivery.offset))
    for placements in by_key.values():
        assert len({partition for partition, _ in placements}) == 1
        offsets = [offset for _, offset in placements]
        assert offsets == sorted(offsets)


async def test_concurrent_single_publishes_share_batches(
    settings: PipelineSettings, unique: str
) -> None:
    spec = await topic_for(settings, unique, partitions=3)
    async with EventProducer(settings) as producer:
        deliveries = await asyncio.gather(
            *(producer.publish(spec, sample(f"k{i}")) for i in range(500))
        )
    assert len({(d.partition, d.offset) for d in deliveries}) == 500
    assert len(await read_all(connect(settings), spec.name)) == 500


def java_partitions(keys: list[str], partitions: int) -> list[int]:
    classpath = resolve_classpath(cache_dir())
    source = Path(__file__).resolve().parent.parent / "java" / "PartitionForKey.java"
    result = subprocess.run(
        [java_executable(), "-cp", classpath, str(source), str(partitions), *keys],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return [int(line) for line in result.stdout.split()]


async def test_keys_land_where_the_java_client_puts_them(
    settings: PipelineSettings, unique: str
) -> None:
    spec = await topic_for(settings, unique, partitions=7)
    keys = [f"customer-{i}" for i in range(60)] + ["ü-ñiçødé", "a", "0123456789abcdef0123"]
    async with EventProducer(settings) as producer:
        deliveries = await producer.publish_many(spec, [sample(key) for key in keys])
    assert [d.partition for d in deliveries] == java_partitions(keys, 7)


async def test_topic_missing_on_cluster_fails_fast_by_name(
    settings: PipelineSettings, unique: str
) -> None:
    spec = dataclasses.replace(SAMPLE_SPEC, name=unique + "never-created")
    async with EventProducer(settings) as producer:
        with pytest.raises(TopicNotOnClusterError, match="pipeline topics apply"):
            await producer.publish(spec, sample("k"))


async def test_wrong_type_and_missing_key_publish_nothing(
    settings: PipelineSettings, unique: str
) -> None:
    spec = await topic_for(settings, unique, partitions=2)
    keyed_by_optional = dataclasses.replace(OPTIONAL_KEY_SPEC, name=spec.name)
    async with EventProducer(settings) as producer:
        with pytest.raises(WrongEventTypeError, match="carries Sample events, not Other"):
            await producer.publish_many(spec, [sample("a"), Other(entity_id="b")])  # type: ignore[list-item]
        with pytest.raises(MissingKeyError, match="keyed by field 'optional_key'"):
            await producer.publish_many(keyed_by_optional, [sample("a")])
    assert await read_all(connect(settings), spec.name) == []


async def test_small_in_flight_budget_still_delivers_everything(
    kafka_bootstrap: str, unique: str
) -> None:
    settings = PipelineSettings(
        bootstrap_servers=kafka_bootstrap,
        producer=ProducerTuning(max_in_flight_bytes=1024 * 1024, batch_bytes=64 * 1024),
    )
    spec = await topic_for(settings, unique, partitions=4)
    peak = 0
    async with EventProducer(settings) as producer:
        pending = []
        for start in range(0, 20_000, 1000):
            pending.append(
                await producer.submit_many(
                    spec, [sample(f"k{i}") for i in range(start, start + 1000)]
                )
            )
            peak = max(peak, producer.in_flight_bytes)
        for future in pending:
            await future
        assert producer.in_flight_bytes == 0
    # One batch may exceed what is left, never the limit plus more than a batch.
    assert peak <= 1024 * 1024 + 64 * 1024
    assert len(await read_all(connect(settings), spec.name)) == 20_000
