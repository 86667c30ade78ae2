"""The aiokafka adapter: the port's clients, made from settings.

The only place that knows aiokafka's constructor arguments, its private
metadata client and its positions. aiokafka ships no types, so what it
returns is `Any` here and becomes the port's types at this module's edge.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from pipeline.kafka.aio_admin import AioAdmin
from pipeline.kafka.aio_connect_errors import explained
from pipeline.kafka.aio_consumer import AioConsumer
from pipeline.kafka.aio_producer import AioProducer
from pipeline.kafka.metadata import DEFAULT_WAIT_S, TopicNotOnClusterError
from pipeline.kafka.port import Admin, Consumer, ConsumerOptions, Producer, ProducerOptions
from pipeline.settings import PipelineSettings

ADMIN_REQUEST_TIMEOUT_MS = 15_000


def client_kwargs(settings: PipelineSettings) -> dict[str, Any]:
    """Connection arguments shared by aiokafka producers, consumers and admins."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": settings.client_id,
        "security_protocol": settings.security_protocol,
    }
    context = settings.ssl_context()
    if context is not None:
        kwargs["ssl_context"] = context
    if settings.sasl_mechanism is not None:
        kwargs["sasl_mechanism"] = settings.sasl_mechanism
        kwargs["sasl_plain_username"] = settings.sasl_username
        kwargs["sasl_plain_password"] = (
            settings.sasl_password.get_secret_value() if settings.sasl_password else None
        )
    return kwargs


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
        client = AIOKafkaConsumer(
            **client_kwargs(self.settings),
            group_id=options.group_id,
            group_instance_id=options.group_instance_id,
            enable_auto_commit=False,
            auto_offset_reset=options.start,
            isolation_level=options.isolation,
            max_partition_fetch_bytes=options.max_partition_fetch_bytes,
            fetch_max_bytes=options.fetch_max_bytes,
            session_timeout_ms=options.session_timeout_ms,
            heartbeat_interval_ms=options.heartbeat_interval_ms,
            rebalance_timeout_ms=options.rebalance_timeout_ms,
        )
        client.start = explained(client.start, self.settings)
        return AioConsumer(client, partition_count)

    def producer(self, options: ProducerOptions) -> Producer:
        client = AIOKafkaProducer(
            **client_kwargs(self.settings),
            acks="all",
            enable_idempotence=True,
            max_batch_size=options.batch_bytes,
            max_request_size=options.max_request_bytes,
            request_timeout_ms=options.request_timeout_ms,
            compression_type=None if options.compression == "none" else options.compression,
            transactional_id=options.transactional_id,
            transaction_timeout_ms=options.transaction_timeout_ms,
        )
        client.start = explained(client.start, self.settings)
        return AioProducer(client, partition_count)

    def admin(self) -> Admin:
        client = AIOKafkaAdminClient(
            **client_kwargs(self.settings), request_timeout_ms=ADMIN_REQUEST_TIMEOUT_MS
        )
        client.start = explained(client.start, self.settings)
        return AioAdmin(client)
