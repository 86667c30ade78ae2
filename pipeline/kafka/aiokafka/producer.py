"""The port's Producer on aiokafka's AIOKafkaProducer: record batches built per partition."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiokafka import TopicPartition as AioPartition

from pipeline.kafka.aiokafka.errors import translated, translated_outcome
from pipeline.kafka.port import Acknowledged, Batch, Headers, TopicPartition

PartitionCount = Callable[[Any, str, float], Awaitable[int]]


class AioBatch:
    """aiokafka's BatchBuilder behind the port's Batch."""

    __slots__ = ("builder",)

    def __init__(self, builder: Any) -> None:
        self.builder = builder

    def append(
        self, key: bytes | None, value: bytes | None, timestamp: int | None, headers: Headers
    ) -> bool:
        return (
            self.builder.append(key=key, value=value, timestamp=timestamp, headers=headers)
            is not None
        )

    def size(self) -> int:
        return int(self.builder.size())


class AioProducer:
    def __init__(self, client: Any, partition_count: PartitionCount) -> None:
        self._client = client
        self._partition_count = partition_count

    async def start(self) -> None:
        await self._client.start()

    async def stop(self) -> None:
        await self._client.stop()

    def create_batch(self) -> Batch:
        return AioBatch(self._client.create_batch())

    @translated
    async def send_batch(
        self, batch: Batch, topic: str, partition: int
    ) -> asyncio.Future[Acknowledged]:
        assert isinstance(batch, AioBatch)
        sent: asyncio.Future[Acknowledged] = await self._client.send_batch(
            batch.builder, topic, partition=partition
        )
        return translated_outcome(sent)

    async def partition_count(self, topic: str, wait_s: float = 5.0) -> int:
        return await self._partition_count(self._client.client, topic, wait_s)

    @translated
    async def begin_transaction(self) -> None:
        await self._client.begin_transaction()

    @translated
    async def send_offsets_to_transaction(
        self, offsets: Mapping[TopicPartition, int], group: object
    ) -> None:
        if not isinstance(group, str):
            raise TypeError(f"expected an aiokafka consumer's group_metadata(), got {group!r}")
        await self._client.send_offsets_to_transaction(
            {AioPartition(tp.topic, tp.partition): offset for tp, offset in offsets.items()},
            group,
        )

    @translated
    async def commit_transaction(self) -> None:
        await self._client.commit_transaction()

    @translated
    async def abort_transaction(self) -> None:
        await self._client.abort_transaction()
