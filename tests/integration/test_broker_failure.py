"""Acknowledged means stored: SIGKILL a broker of three while publishing 100k events."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import pytest

from pipeline.dev.localkafka import LocalKafka
from pipeline.kafka.connect import connect
from pipeline.ops.topics import TopicsOnCluster, ensure_topics
from pipeline.publishing.delivery import Delivery, DeliveryList
from pipeline.publishing.producer import EventProducer
from pipeline.settings import PipelineSettings, ProducerTuning
from pipeline.wire.codec import HEADER_EVENT_ID, header_value
from tests.support import log_progress, read_all
from tests.unit.models import SAMPLE_SPEC, Sample

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS = 100_000
CHUNK = 1000
KILL_AFTER_ACKED = 40_000


def sample(i: int) -> Sample:
    return Sample(
        entity_id=f"key-{i % 997}",
        happened_at=datetime.now(UTC),
        amount=Decimal(i) / 100,
        reference=uuid4(),
        count=i,
    )


async def test_every_acknowledged_event_survives_a_killed_broker_exactly_once(
    three_brokers: LocalKafka,
) -> None:
    state = three_brokers.load_state()
    assert state is not None
    settings = PipelineSettings(
        bootstrap_servers=state.bootstrap,
        producer=ProducerTuning(request_timeout_ms=20_000, batch_bytes=128 * 1024),
    )
    spec = dataclasses.replace(
        SAMPLE_SPEC,
        name=f"failover-{uuid4().hex[:8]}",
        partitions=6,
        replication_factor=3,
        min_insync_replicas=2,
    )
    await ensure_topics(connect(settings), [spec])
    async with TopicsOnCluster(connect(settings)) as admin:
        layout = (await admin.partitions([spec.name]))[spec.name]
    assert all(len(p.isr) == 3 for p in layout)
    # Kill the broker leading the most partitions: the worst case for producers.
    victim = Counter(p.leader for p in layout).most_common(1)[0][0]

    acknowledged: list[Delivery] = []
    failed_chunks = 0
    killed = False
    in_flight: list[asyncio.Future[DeliveryList]] = []

    async def settle(keep: int) -> None:
        nonlocal failed_chunks
        while len(in_flight) > keep:
            future = in_flight.pop(0)
            try:
                acknowledged.extend(await future)
            except Exception:  # noqa: BLE001 - counted: not acknowledged, may or may not be stored
                failed_chunks += 1

    async with EventProducer(settings) as producer:
        for start in range(0, EVENTS, CHUNK):
            if not killed and len(acknowledged) >= KILL_AFTER_ACKED:
                three_brokers.kill_node(victim, signal.SIGKILL)
                killed = True
                log_progress(f"SIGKILLed node {victim} after {len(acknowledged)} acknowledged")
            chunk = [sample(i) for i in range(start, start + CHUNK)]
            try:
                in_flight.append(await producer.submit_many(spec, chunk))
            except Exception:  # noqa: BLE001 - a chunk that could not even be queued
                failed_chunks += 1
            await settle(4)
        await settle(0)

    assert killed, "the broker was never killed: the test proved nothing"
    acked_after_kill = len(acknowledged) - KILL_AFTER_ACKED
    assert acked_after_kill > 20_000, f"only {acked_after_kill} acknowledged after the kill"

    records = await read_all(connect(settings), spec.name, timeout_s=120)
    stored = Counter(header_value(r.headers, HEADER_EVENT_ID) for r in records)
    missing = [d for d in acknowledged if stored[d.event_id] == 0]
    duplicated = [d for d in acknowledged if stored[d.event_id] > 1]
    assert missing == []
    assert duplicated == []
    by_position = {
        (r.partition, r.offset): header_value(r.headers, HEADER_EVENT_ID) for r in records
    }
    assert all(by_position[(d.partition, d.offset)] == d.event_id for d in acknowledged)
    log_progress(
        f"{len(acknowledged)} acknowledged, {failed_chunks} chunks failed, {len(records)} stored"
    )
