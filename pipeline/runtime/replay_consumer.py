"""A replay's consumer: the group's consumer, held to a range per partition, a rate, an end.

It wraps the Consumer port, so the runtime runs a replay exactly as it runs
live work: records before a partition's range start (fetched before the
seek took effect) and at or after its end are dropped, not handled; a
partition that reached its end is paused; commits carry the plan in their
metadata, so a restart resumes over the same range; positions are capped
at the range end, so offsets passed without a record at the end (a
transaction marker) count as done and the end gets committed. The replay
is finished when every partition has committed its end.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

from pipeline.kafka.port import (
    CommitMetadata,
    Committed,
    Consumer,
    RebalanceListener,
    Record,
    TopicPartition,
)
from pipeline.metric_names import REPLAY_OUTSIDE_RANGE
from pipeline.metrics import Metrics
from pipeline.ops.replay import ReplayPlan
from pipeline.resilience.ratelimit import TokenBucket


class _Positioning:
    """Positions newly assigned partitions before anything else hears of them."""

    def __init__(self, replay: ReplayConsumer, listener: RebalanceListener) -> None:
        self.replay = replay
        self.listener = listener

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.listener.on_revoked(revoked)

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        self.replay.start_at_ranges(assigned)  # no await before it: the first fetch sees the seek
        await self.listener.on_assigned(assigned)


class ReplayConsumer:
    def __init__(self, inner: Consumer, plan: ReplayPlan, metrics: Metrics) -> None:
        self.inner = inner
        self.plan = plan
        self._metrics = metrics
        self._bucket = TokenBucket(plan.rate_per_s) if plan.rate_per_s else None
        self.reached_end: set[TopicPartition] = set()
        self.committed_offsets: dict[int, int] = dict(plan.resume_from)
        """What this replay's group has committed: read at its start, then its own commits."""

    # -- what differs from the consumer it wraps ------------------------------------------------

    def subscribe(self, topic: str, listener: RebalanceListener) -> None:
        self.inner.subscribe(topic, _Positioning(self, listener))

    def start_at_ranges(self, partitions: Iterable[TopicPartition]) -> None:
        """Start each partition at its range (or where this replay got to); hold the rest."""
        for tp in partitions:
            bounds = self.plan.ranges.get(tp.partition)
            committed = self.committed_offsets.get(tp.partition)
            if bounds is None or bounds.size == 0 or (committed or 0) >= bounds.end:
                self._hold(tp)
            elif committed is None or committed < bounds.start:
                self.inner.seek(tp, bounds.start)

    def _hold(self, tp: TopicPartition) -> None:
        self.reached_end.add(tp)
        self.inner.pause(tp)

    async def fetch(
        self, partitions: Collection[TopicPartition], timeout_s: float, max_records: int
    ) -> Mapping[TopicPartition, Sequence[Record]]:
        """The records inside the ranges, after the rate limit; holds a partition at its end."""
        fetched = await self.inner.fetch(partitions, timeout_s, max_records)
        inside: dict[TopicPartition, Sequence[Record]] = {}
        for tp, records in fetched.items():
            bounds = self.plan.ranges.get(tp.partition)
            if bounds is None:
                self._hold(tp)
                continue
            kept = [r for r in records if bounds.start <= r.offset < bounds.end]
            self._metrics.inc(REPLAY_OUTSIDE_RANGE, len(records) - len(kept))
            if records and records[-1].offset + 1 >= bounds.end:
                self._hold(tp)
            if kept:
                inside[tp] = kept
        count = sum(len(records) for records in inside.values())
        if count and self._bucket is not None:
            await self._bucket.acquire(count)
        return inside

    def known_position(self, partition: TopicPartition) -> int | None:
        """Never past the range end: offsets up to it with no record count as done, no further."""
        position = self.inner.known_position(partition)
        bounds = self.plan.ranges.get(partition.partition)
        if position is None or bounds is None:
            return position
        return min(position, bounds.end)

    async def commit(
        self, offsets: Mapping[TopicPartition, int], metadata: CommitMetadata = ""
    ) -> None:
        """A replay's commits carry its plan (a replay is not quarantined: it has no mark)."""
        await self.inner.commit(offsets, self.plan.metadata())
        self.committed_offsets.update({tp.partition: offset for tp, offset in offsets.items()})

    def finished(self) -> bool:
        """Every partition of the range has committed its end."""
        return all(
            self.committed_offsets.get(partition, -1) >= bounds.end
            for partition, bounds in self.plan.ranges.items()
            if bounds.size
        )

    # -- the rest is the wrapped consumer's ------------------------------------------------------

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        self.inner.assign(partitions)

    def assignment(self) -> set[TopicPartition]:
        return self.inner.assignment()

    def pause(self, *partitions: TopicPartition) -> None:
        self.inner.pause(*partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.inner.resume(*(tp for tp in partitions if tp not in self.reached_end))

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.inner.seek(partition, offset)

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        await self.inner.seek_to_beginning(*partitions)

    async def position(self, partition: TopicPartition) -> int:
        return await self.inner.position(partition)

    def highwater(self, partition: TopicPartition) -> int | None:
        return self.inner.highwater(partition)

    async def committed(self, partition: TopicPartition) -> Committed | None:
        return await self.inner.committed(partition)

    async def beginning_offsets(
        self, partitions: Collection[TopicPartition]
    ) -> dict[TopicPartition, int]:
        return await self.inner.beginning_offsets(partitions)

    async def end_offsets(
        self, partitions: Collection[TopicPartition]
    ) -> dict[TopicPartition, int]:
        return await self.inner.end_offsets(partitions)

    async def offsets_for_times(
        self, times_ms: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, int | None]:
        return await self.inner.offsets_for_times(times_ms)

    async def partition_count(self, topic: str, wait_s: float = 5.0) -> int:
        return await self.inner.partition_count(topic, wait_s)

    async def group_metadata(self) -> object:
        return await self.inner.group_metadata()
