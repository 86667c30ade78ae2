"""A group's commits read through a consumer of that group, never through the AdminClient.

librdkafka's AdminClient ListConsumerGroupOffsets kills the process (SIGSEGV
in `rd_kafka_cgrp_op`, called with no consumer group handle from
`rd_kafka_handle_OffsetFetch`) when a broker answers NOT_COORDINATOR, as
every broker does while a freshly started cluster is still electing the
group's coordinator: librdkafka issue 5040, confluent-kafka-python issue
1982, met on confluent-kafka 2.16.1 / librdkafka 2.16.0 by the first
`pipeline replay` on a new cluster. A consumer has a group handle, and the
same answer makes it look the coordinator up again and retry. Nothing here
subscribes: the consumer joins no group and moves no offset.

`tests/integration/test_fresh_cluster.py` runs every group command on a
freshly started cluster, and keeps a check that the AdminClient call still
crashes there, so that the day a librdkafka release mends it is seen.
"""

from __future__ import annotations

import asyncio
from typing import Any

from confluent_kafka import Consumer, KafkaException
from confluent_kafka import TopicPartition as TheirTopicPartition

from pipeline.kafka.confluent.errors import coordinator_moving
from pipeline.kafka.coordinator_wait import asking_until_coordinated_blocking
from pipeline.kafka.port import Committed, TopicPartition

REQUEST_TIMEOUT_S = 15.0


class GroupCommitReader:
    """One idle consumer per group asked about, kept until `close` (a console asks often)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._config = config
        self._consumers: dict[str, Consumer] = {}

    def _consumer(self, group: str) -> Consumer:
        consumer = self._consumers.get(group)
        if consumer is None:
            config = {
                **self._config,
                "group.id": group,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
            }
            consumer = self._consumers[group] = Consumer(config)
        return consumer

    async def commits(self, group: str) -> dict[TopicPartition, Committed]:
        """Every partition of every topic the group committed on (internal topics aside)."""
        consumer = self._consumer(group)
        metadata = await asyncio.to_thread(consumer.list_topics, None, REQUEST_TIMEOUT_S)
        partitions = [
            TheirTopicPartition(topic, partition)
            for topic, described in metadata.topics.items()
            if not topic.startswith("__")
            for partition in described.partitions
        ]
        if not partitions:
            return {}

        def ask() -> list[TheirTopicPartition]:
            found = consumer.committed(partitions, REQUEST_TIMEOUT_S)
            for tp in found:
                if tp.error is not None:
                    raise KafkaException(tp.error)
            return list(found)

        found = await asyncio.to_thread(asking_until_coordinated_blocking, ask, coordinator_moving)
        return {
            TopicPartition(tp.topic, tp.partition): Committed(tp.offset, tp.metadata or "")
            for tp in found
            if tp.offset >= 0
        }

    async def close(self) -> None:
        consumers = list(self._consumers.values())
        self._consumers.clear()
        for consumer in consumers:
            await asyncio.to_thread(consumer.close)
