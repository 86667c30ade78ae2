"""The port's Consumer on aiokafka's AIOKafkaConsumer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from aiokafka import ConsumerRebalanceListener
from aiokafka import TopicPartition as AioPartition
from aiokafka.structs import OffsetAndMetadata

from pipeline.kafka.aiokafka.errors import translated
from pipeline.kafka.port import (
    CommitMetadata,
    Committed,
    KafkaClientError,
    RebalanceListener,
    Record,
    TopicPartition,
    metadata_of,
)

PartitionCount = Callable[[Any, str, float], Awaitable[int]]


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """aiokafka awaits these around each rebalance (eager protocol)."""

    def __init__(self, listener: RebalanceListener) -> None:
        self.listener = listener

    async def on_partitions_revoked(self, revoked: set[Any]) -> None:
        await self.listener.on_revoked({TopicPartition(*tp) for tp in revoked})

    async def on_partitions_assigned(self, assigned: set[Any]) -> None:
        await self.listener.on_assigned({TopicPartition(*tp) for tp in assigned})


class AioConsumer:
    def __init__(self, client: Any, partition_count: PartitionCount) -> None:
        self._client = client
        self._partition_count = partition_count
        self._theirs: dict[tuple[str, int], Any] = {}

    def _aio(self, tp: tuple[str, int]) -> Any:
        """aiokafka's own TopicPartition (it checks the type); one instance per partition."""
        found = self._theirs.get(tp)
        if found is None:
            found = self._theirs[tp] = AioPartition(tp[0], tp[1])
        return found

    async def start(self) -> None:
        await self._client.start()

    async def stop(self) -> None:
        await self._client.stop()

    def subscribe(self, topic: str, listener: RebalanceListener) -> None:
        self._client.subscribe([topic], listener=_Listener(listener))

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        self._client.assign([self._aio(tp) for tp in partitions])

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(*tp) for tp in self._client.assignment()}

    @translated
    async def fetch(
        self, partitions: Collection[TopicPartition], timeout_s: float, max_records: int
    ) -> Mapping[TopicPartition, Sequence[Record]]:
        # aiokafka's keys are its own (topic, partition) tuples: equal to ours, no copy.
        found: Mapping[TopicPartition, Sequence[Record]] = await self._client.getmany(
            *(self._aio(tp) for tp in partitions),
            timeout_ms=int(timeout_s * 1000),
            max_records=max_records,
        )
        return found

    def pause(self, *partitions: TopicPartition) -> None:
        self._client.pause(*(self._aio(tp) for tp in partitions))

    def resume(self, *partitions: TopicPartition) -> None:
        self._client.resume(*(self._aio(tp) for tp in partitions))

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self._client.seek(self._aio(partition), offset)

    @translated
    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        await self._client.seek_to_beginning(*(self._aio(tp) for tp in partitions))

    @translated
    async def position(self, partition: TopicPartition) -> int:
        return int(await self._client.position(self._aio(partition)))

    def known_position(self, partition: TopicPartition) -> int | None:
        # position() waits for a position; a fetch loop must not. This reads the
        # subscription state aiokafka's own highwater() reads.
        subscription = self._client._subscription
        if not subscription.is_assigned(partition):
            return None
        state = subscription.subscription.assignment.state_value(partition)
        return int(state.position) if state.has_valid_position else None

    def highwater(self, partition: TopicPartition) -> int | None:
        if not self._client._subscription.is_assigned(partition):
            return None
        found = self._client.highwater(self._aio(partition))
        return None if found is None else int(found)

    @translated
    async def commit(
        self, offsets: Mapping[TopicPartition, int], metadata: CommitMetadata = ""
    ) -> None:
        await self._client.commit(
            {
                self._aio(tp): OffsetAndMetadata(offset, metadata_of(metadata, tp))
                for tp, offset in offsets.items()
            }
        )

    @translated
    async def committed(self, partition: TopicPartition) -> Committed | None:
        # AIOKafkaConsumer.committed drops the metadata; its coordinator's call keeps it.
        tp = self._aio(partition)
        found = await self._client._coordinator.fetch_committed_offsets([tp])
        if tp not in found or found[tp].offset < 0:
            return None
        return Committed(int(found[tp].offset), found[tp].metadata or "")

    @translated
    async def beginning_offsets(
        self, partitions: Collection[TopicPartition]
    ) -> dict[TopicPartition, int]:
        found = await self._client.beginning_offsets([self._aio(tp) for tp in partitions])
        return {TopicPartition(*tp): int(offset) for tp, offset in found.items()}

    @translated
    async def end_offsets(
        self, partitions: Collection[TopicPartition]
    ) -> dict[TopicPartition, int]:
        found = await self._client.end_offsets([self._aio(tp) for tp in partitions])
        return {TopicPartition(*tp): int(offset) for tp, offset in found.items()}

    @translated
    async def offsets_for_times(
        self, times_ms: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, int | None]:
        found = await self._client.offsets_for_times(
            {self._aio(tp): millis for tp, millis in times_ms.items()}
        )
        return {
            TopicPartition(*tp): None if at is None else int(at.offset) for tp, at in found.items()
        }

    async def partition_count(self, topic: str, wait_s: float = 5.0) -> int:
        return await self._partition_count(self._client._client, topic, wait_s)

    async def group_metadata(self) -> object:
        """The group id: aiokafka sends transactional offsets without KIP-447's generation."""
        group_id = self._client._group_id
        if group_id is None:
            raise KafkaClientError("group_metadata needs a consumer with a group_id")
        return str(group_id)
