"""librdkafka's Messages as the port's records, grouped by partition, in one pass.

Runs on the consumer thread, right after `consume()`: one object per record
(librdkafka's Message answers through methods; the runtime reads
attributes), and each error in the batch is either raised (fatal) or logged.
"""

from __future__ import annotations

import logging
from typing import cast

from confluent_kafka import KafkaError, KafkaException, Message
from confluent_kafka import TopicPartition as TheirPartition

from pipeline.kafka.port import Headers, TopicPartition

log = logging.getLogger("pipeline.kafka.confluent")


class ConfluentRecord:
    """A fetched record with the port's attributes (librdkafka's Message has methods)."""

    __slots__ = ("headers", "key", "offset", "partition", "timestamp", "topic", "value")

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        timestamp: int,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
        self.key = key
        self.value = value
        self.headers = headers


def theirs(tp: tuple[str, int], offset: int | None = None) -> TheirPartition:
    if offset is None:
        return TheirPartition(tp[0], tp[1])
    return TheirPartition(tp[0], tp[1], offset)


def ours(tp: TheirPartition) -> TopicPartition:
    return TopicPartition(tp.topic, tp.partition)


def by_partition(messages: list[Message]) -> dict[TopicPartition, list[ConfluentRecord]]:
    found: dict[TopicPartition, list[ConfluentRecord]] = {}
    current_key: tuple[str | None, int | None] = ("", -1)
    current: list[ConfluentRecord] = []
    for message in messages:
        error = message.error()
        if error is not None:
            _on_fetch_error(error)
            continue
        topic, partition = message.topic(), message.partition()
        assert topic is not None and partition is not None  # set on every fetched record
        if (topic, partition) != current_key:
            current_key = (topic, partition)
            current = found.setdefault(TopicPartition(topic, partition), [])
        offset = message.offset()
        assert offset is not None
        current.append(
            ConfluentRecord(
                topic,
                partition,
                offset,
                message.timestamp()[1],
                message.key(),
                message.value(),
                cast(Headers, message.headers() or ()),  # str names, bytes (or None) values
            )
        )
    return found


def _on_fetch_error(error: KafkaError) -> None:
    if error.fatal():
        raise KafkaException(error)
    if error.code() == KafkaError._PARTITION_EOF:
        return
    log.warning("the Kafka consumer reports %s: %s", error.name(), error.str())
