"""Offsets asked of the partitions' leaders, on a confluent consumer's own thread."""

from __future__ import annotations

from confluent_kafka import Consumer

from pipeline.kafka.confluent_records import theirs
from pipeline.kafka.port import KafkaClientError, TopicPartition

QUERY_TIMEOUT_S = 15.0


def watermarks(
    client: Consumer, partitions: list[TopicPartition], which: int
) -> dict[TopicPartition, int]:
    """On the consumer thread: each partition's first (which=0) or end (1) offset."""
    found: dict[TopicPartition, int] = {}
    for tp in partitions:
        low_high = client.get_watermark_offsets(theirs(tp), timeout=QUERY_TIMEOUT_S)
        if low_high is None:
            raise KafkaClientError(f"no offsets for {tp.topic}[{tp.partition}]")
        found[TopicPartition(*tp)] = low_high[which]
    return found
