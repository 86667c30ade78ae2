"""Offsets read straight from the brokers (ListOffsets), no consumer group involved."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from pipeline.settings import PipelineSettings
from pipeline.topic_metadata import partition_count


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


async def committed_offsets(settings: PipelineSettings, group: str, topic: str) -> dict[int, int]:
    """Partition → the group's committed offset on `topic` (partitions never committed: absent)."""
    admin = AIOKafkaAdminClient(**settings.client_kwargs())
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
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
