"""The aiokafka adapter: the port's clients, made from settings.

The only place that knows aiokafka's constructor arguments, its private
metadata client and its positions. aiokafka ships no types, so what it
returns is `Any` here and becomes the port's types at this module's edge.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiokafka
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from pipeline.kafka.aiokafka.admin import AioAdmin
from pipeline.kafka.aiokafka.config import admin_kwargs, consumer_kwargs, producer_kwargs
from pipeline.kafka.aiokafka.connect_errors import explained
from pipeline.kafka.aiokafka.consumer import AioConsumer
from pipeline.kafka.aiokafka.producer import AioProducer
from pipeline.kafka.metadata import DEFAULT_WAIT_S, TopicNotOnClusterError
from pipeline.kafka.port import (
    Admin,
    Consumer,
    ConsumerOptions,
    Producer,
    ProducerOptions,
    ShareConsumer,
    ShareGroupsUnsupported,
    ShareOptions,
)
from pipeline.settings import PipelineSettings


async def partition_count(client: Any, topic: str, wait_s: float = DEFAULT_WAIT_S) -> int:
    """Partitions of `topic` from an aiokafka client's metadata, refreshed while it is missing."""
    partitions = client.cluster.partitions_for_topic(topic)
    if partitions:
        return len(partitions)
    client.add_topic(topic)
    deadline = time.monotonic() + wait_s
    while True:
        await client.force_metadata_update()
        partitions = client.cluster.partitions_for_topic(topic)
        if partitions:
            return len(partitions)
        if time.monotonic() >= deadline:
            raise TopicNotOnClusterError(topic, str(client._bootstrap_servers))
        await asyncio.sleep(0.2)


class AioClients:
    """The port's Clients on aiokafka."""

    def __init__(self, settings: PipelineSettings) -> None:
        self.settings = settings

    @property
    def bootstrap(self) -> str:
        return self.settings.bootstrap_servers

    def consumer(self, options: ConsumerOptions) -> Consumer:
        client = AIOKafkaConsumer(**consumer_kwargs(self.settings, options))
        client.start = explained(client.start, self.settings)
        return AioConsumer(client, partition_count)

    def producer(self, options: ProducerOptions) -> Producer:
        client = AIOKafkaProducer(**producer_kwargs(self.settings, options))
        client.start = explained(client.start, self.settings)
        return AioProducer(client, partition_count)

    def admin(self) -> Admin:
        client = AIOKafkaAdminClient(**admin_kwargs(self.settings))
        client.start = explained(client.start, self.settings)
        return AioAdmin(client)

    def share_consumer(self, options: ShareOptions) -> ShareConsumer:
        raise ShareGroupsUnsupported(
            f"share group {options.group_id!r} needs the confluent client (aiokafka "
            f"{aiokafka.__version__} has no share-group support): set PIPELINE_CLIENT=confluent "
            "or pass --client confluent"
        )
