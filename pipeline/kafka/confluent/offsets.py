"""Offsets asked of the partitions' leaders, on a confluent consumer's own thread."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from confluent_kafka import Consumer, KafkaException
from confluent_kafka import TopicPartition as TheirPartition

from pipeline.kafka.confluent.errors import coordinator_moving, from_kafka_error
from pipeline.kafka.confluent.records import ours, theirs
from pipeline.kafka.coordinator_wait import asking_until_coordinated_blocking
from pipeline.kafka.port import (
    CommitMetadata,
    Committed,
    KafkaClientError,
    TopicPartition,
    metadata_of,
)
from pipeline.kafka.port import (
    Consumer as PortConsumer,
)

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


def committed_offset(client: Consumer, tp: TopicPartition) -> Committed | None:
    """On the consumer thread: the group's commit for `tp` (None: nothing committed).

    A partition's error is raised, never read as "nothing committed" (that would
    start it over from the log start); a coordinator still moving is waited out.
    """

    def ask() -> Committed | None:
        found = client.committed([theirs(tp)], timeout=QUERY_TIMEOUT_S)[0]
        if found.error is not None:
            raise KafkaException(found.error)
        return None if found.offset < 0 else Committed(found.offset, found.metadata or "")

    return asking_until_coordinated_blocking(ask, coordinator_moving)


def offsets_at_times(
    client: Consumer, times_ms: Mapping[TopicPartition, int]
) -> dict[TopicPartition, int | None]:
    """On the consumer thread: each partition's first offset at or after its time."""
    asked = [theirs(tp, millis) for tp, millis in times_ms.items()]
    found = client.offsets_for_times(asked, timeout=QUERY_TIMEOUT_S)
    return {ours(tp): None if tp.offset < 0 else tp.offset for tp in found}


def partitions_of(client: Consumer, topic: str) -> int:
    """On the consumer thread: how many partitions `topic` has (0: not known to the cluster)."""
    found = client.list_topics(topic, timeout=QUERY_TIMEOUT_S).topics.get(topic)
    return len(found.partitions) if found is not None and found.error is None else 0


def commit_offsets(
    client: Consumer, offsets: Mapping[TopicPartition, int], metadata: CommitMetadata
) -> None:
    """On the consumer thread: commit and wait, raising the first partition's error."""
    positions = [
        TheirPartition(tp.topic, tp.partition, offset, metadata=metadata_of(metadata, tp))
        for tp, offset in offsets.items()
    ]
    for answer in client.commit(offsets=positions, asynchronous=False) or []:
        if answer.error is not None:
            raise from_kafka_error(answer.error)


async def position_before_fetching(
    consumer: PortConsumer, partition: TopicPartition, reset: object, grouped: bool
) -> int:
    """The next offset the consumer hands over: known once it fetched; before that, the
    group's commit, else where `auto.offset.reset` starts it (librdkafka knows only later)."""
    deadline = time.monotonic() + QUERY_TIMEOUT_S
    while True:
        known = consumer.known_position(partition)
        if known is not None:
            return known
        committed = await consumer.committed(partition) if grouped else None
        if committed is not None:
            return committed.offset
        if reset == "earliest":
            return (await consumer.beginning_offsets([partition]))[partition]
        if reset == "latest":
            return (await consumer.end_offsets([partition]))[partition]
        if time.monotonic() >= deadline:
            raise KafkaClientError(f"no position for {partition.topic}[{partition.partition}]")
        await asyncio.sleep(0.05)
