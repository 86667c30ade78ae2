"""Offsets read straight from the brokers (ListOffsets), no consumer group involved."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from pipeline.settings import PipelineSettings
from pipeline.topic_admin import TopicAdmin
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


async def group_member_count(admin: AIOKafkaAdminClient, group: str) -> int:
    """Members the group has now (0 when it is empty or unknown), from DescribeGroups."""
    for response in await admin.describe_consumer_groups([group]):
        for described in response.groups:
            # (error_code, group_id, state, protocol_type, protocol, members, ...)
            if described[1] == group:
                return len(described[5])
    return 0


async def read_group_commits(
    settings: PipelineSettings, group: str
) -> dict[TopicPartition, OffsetAndMetadata]:
    """group_commits with an admin connection of its own."""
    async with TopicAdmin(settings) as admin:
        return await group_commits(admin.admin, group)


async def count_group_members(settings: PipelineSettings, group: str) -> int:
    """group_member_count with an admin connection of its own."""
    async with TopicAdmin(settings) as admin:
        return await group_member_count(admin.admin, group)


async def committed_offsets(settings: PipelineSettings, group: str, topic: str) -> dict[int, int]:
    """Partition → the group's committed offset on `topic` (partitions never committed: absent)."""
    offsets = await read_group_commits(settings, group)
    return {
        tp.partition: meta.offset
        for tp, meta in offsets.items()
        if tp.topic == topic and meta.offset >= 0
    }
