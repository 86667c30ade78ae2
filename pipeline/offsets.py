"""Offsets read straight from the brokers (ListOffsets), no consumer group involved."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition

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
