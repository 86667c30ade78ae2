"""The port's Consumer on the in-memory broker."""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Mapping, Sequence

from pipeline.kafka.memory.cluster import MemoryBroker
from pipeline.kafka.memory.groups import Group
from pipeline.kafka.port import (
    CommitMetadata,
    Committed,
    ConsumerOptions,
    KafkaClientError,
    RebalanceListener,
    Record,
    TopicPartition,
    metadata_of,
)


class MemoryConsumer:
    def __init__(self, broker: MemoryBroker, options: ConsumerOptions) -> None:
        self.broker = broker
        self.options = options
        self.subscription: str | None = None
        self.client_id = options.client_id or "pipeline"
        """What the group's description names it (a real client's default is the settings')."""
        self._listener: RebalanceListener | None = None
        self._group: Group | None = broker.group(options.group_id) if options.group_id else None
        self._assigned: set[TopicPartition] = set()
        self._positions: dict[TopicPartition, int | None] = {}
        self._highwater: dict[TopicPartition, int] = {}
        self._paused: set[TopicPartition] = set()
        self._started = False

    # -- life ----------------------------------------------------------------------------

    async def start(self) -> None:
        self.broker.check_reachable()
        self._started = True
        if self.subscription is not None and self._group is not None:
            await self._group.join(self)

    async def stop(self) -> None:
        if self._started and self.subscription is not None and self._group is not None:
            await self._group.leave(self)
        self._started = False

    def subscribe(self, topic: str, listener: RebalanceListener) -> None:
        if self._group is None:
            raise KafkaClientError("subscribe needs a group_id")
        self.subscription = topic
        self._listener = listener
        if self._started:
            self.broker.spawn(self._group.join(self))

    # -- group callbacks -------------------------------------------------------------------

    def set_assignment(self, partitions: set[TopicPartition]) -> None:
        self._assigned = set(partitions)
        self._positions = {tp: None for tp in partitions}
        self._paused &= self._assigned

    async def revoke_all(self) -> None:
        """Eager: the listener hears of each rebalance, even with nothing to lose (as in Kafka)."""
        revoked, self._assigned = self._assigned, set()
        if self._listener is not None:
            await self._listener.on_revoked(revoked)

    async def assign_from_group(self, partitions: set[TopicPartition]) -> None:
        self.set_assignment(partitions)
        if self._listener is not None:
            await self._listener.on_assigned(set(partitions))

    # -- assignment and positions -------------------------------------------------------------

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        self.set_assignment({TopicPartition(*tp) for tp in partitions})

    def assignment(self) -> set[TopicPartition]:
        return set(self._assigned)

    def _resolve(self, tp: TopicPartition) -> int:
        """The position of a partition that has none yet: its commit, else the reset policy."""
        position = self._positions.get(tp)
        if position is None:
            committed = self._group.commits.get(tp) if self._group is not None else None
            if committed is not None:
                position = committed.offset
            elif self.options.start == "earliest":
                position = 0
            else:
                position = self._end(tp)
            self._positions[tp] = position
        return position

    def _end(self, tp: TopicPartition) -> int:
        log = self.broker.partition_log(tp)
        if self.options.isolation == "read_committed":
            return log.stable_offset(self.broker.transactions)
        return log.high_watermark

    async def fetch(
        self, partitions: Collection[TopicPartition], timeout_s: float, max_records: int
    ) -> Mapping[TopicPartition, Sequence[Record]]:
        deadline = time.monotonic() + timeout_s
        while True:
            self.broker.check_reachable()
            found = self._read(partitions, max_records)
            if found or time.monotonic() >= deadline:
                return found
            await self.broker.wait_for_data(deadline - time.monotonic())

    def _read(
        self, partitions: Collection[TopicPartition], max_records: int
    ) -> dict[TopicPartition, Sequence[Record]]:
        wanted = [TopicPartition(*tp) for tp in partitions] if partitions else list(self._assigned)
        found: dict[TopicPartition, Sequence[Record]] = {}
        left = max_records
        read_committed = self.options.isolation == "read_committed"
        for tp in wanted:
            if left <= 0:
                break
            if tp not in self._assigned or tp in self._paused:
                continue
            log = self.broker.partition_log(tp)
            position = self._resolve(tp)
            if position < log.log_start:
                # Out of range, as Kafka answers: the reset policy decides.
                position = log.log_start if self.options.start == "earliest" else self._end(tp)
            records, position = log.read(position, left, read_committed, self.broker.transactions)
            self._positions[tp] = position
            self._highwater[tp] = log.high_watermark
            if records:
                found[tp] = records
                left -= len(records)
        return found

    def pause(self, *partitions: TopicPartition) -> None:
        self._paused.update(TopicPartition(*tp) for tp in partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self._paused.difference_update(TopicPartition(*tp) for tp in partitions)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self._positions[TopicPartition(*partition)] = offset

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        for tp in partitions:
            self._positions[TopicPartition(*tp)] = self.broker.partition_log(tp).log_start

    async def position(self, partition: TopicPartition) -> int:
        tp = TopicPartition(*partition)
        if tp not in self._assigned:
            raise KafkaClientError(f"IllegalStateError: partition {tp} is not assigned")
        return self._resolve(tp)

    def known_position(self, partition: TopicPartition) -> int | None:
        return self._positions.get(TopicPartition(*partition))

    def highwater(self, partition: TopicPartition) -> int | None:
        return self._highwater.get(TopicPartition(*partition))

    # -- commits and offsets ----------------------------------------------------------------

    async def commit(
        self, offsets: Mapping[TopicPartition, int], metadata: CommitMetadata = ""
    ) -> None:
        self.broker.check_reachable()
        if self._group is None:
            raise KafkaClientError("commit needs a group_id")
        await self.broker.maybe_fail("commit")
        self._group.commit(
            {TopicPartition(*tp): o for tp, o in offsets.items()},
            {TopicPartition(*tp): metadata_of(metadata, tp) for tp in offsets},
        )

    async def committed(self, partition: TopicPartition) -> Committed | None:
        if self._group is None:
            return None
        found = self._group.commits.get(TopicPartition(*partition))
        return None if found is None else Committed(found.offset, found.metadata)

    async def beginning_offsets(
        self, partitions: Collection[TopicPartition]
    ) -> dict[TopicPartition, int]:
        return {TopicPartition(*tp): self.broker.partition_log(tp).log_start for tp in partitions}

    async def end_offsets(
        self, partitions: Collection[TopicPartition]
    ) -> dict[TopicPartition, int]:
        return {TopicPartition(*tp): self._end(TopicPartition(*tp)) for tp in partitions}

    async def offsets_for_times(
        self, times_ms: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, int | None]:
        return {
            TopicPartition(*tp): self.broker.partition_log(tp).offset_for_time(millis)
            for tp, millis in times_ms.items()
        }

    async def partition_count(self, topic: str, wait_s: float = 5.0) -> int:
        return await self.broker.partition_count(topic, wait_s)

    async def group_metadata(self) -> object:
        """The group id only: like aiokafka, this broker does not fence by generation."""
        if self._group is None:
            raise KafkaClientError("group_metadata needs a group_id")
        return self._group.id
