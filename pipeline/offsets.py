"""Offsets read straight from the brokers (ListOffsets), no consumer group involved."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from pipeline.settings import PipelineSettings
from pipeline.topic_metadata import partition_count

COORDINATOR_WAIT_S = 30.0


async def end_offsets(settings: PipelineSettings, topic: str) -> dict[int, int]:
    """Partition → offset the next record will get (the high watermark)."""
    consumer = AIOKafkaConsumer(**settings.client_kwargs(), enable_auto_commit=False)
    await consumer.start()
    try:
        count = await partition_count(consumer._client, topic)
        partitions = [TopicPartition(topic, p) for p in range(count)]
        consumer.assign(partitions)
        offsets = await consumer.end_offsets(partitions)
        return {tp.partition: offset for tp, offset in offsets.items()}
    finally:
        await consumer.stop()


async def group_commits(
    admin: AIOKafkaAdminClient, group: str
) -> dict[TopicPartition, OffsetAndMetadata]:
    """A group's commits (offset and metadata), waiting out a coordinator still being elected.

    On a fresh cluster the offsets topic does not exist until the first
    group asks for it; until then the brokers answer "coordinator not
    available", a retriable error.
    """
    deadline = time.monotonic() + COORDINATOR_WAIT_S
    while True:
        try:
            found: dict[
                TopicPartition, OffsetAndMetadata
            ] = await admin.list_consumer_group_offsets(group)
            return found
        except KafkaError as exc:
            if not exc.retriable or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def committed_offsets(settings: PipelineSettings, group: str, topic: str) -> dict[int, int]:
    """Partition → the group's committed offset on `topic` (partitions never committed: absent)."""
    admin = AIOKafkaAdminClient(**settings.client_kwargs())
    await admin.start()
    try:
        offsets = await group_commits(admin, group)
    finally:
        await admin.close()
    return {
        tp.partition: meta.offset
        for tp, meta in offsets.items()
        if tp.topic == topic and meta.offset >= 0
    }


async def group_lag(settings: PipelineSettings, group: str, topic: str) -> dict[int, int]:
    """Partition → records not yet committed by `group` (all of them where it never committed)."""
    ends = await end_offsets(settings, topic)
    committed = await committed_offsets(settings, group, topic)
    return {partition: end - committed.get(partition, 0) for partition, end in ends.items()}
