"""What the worker runtime does differently in a replay: a range per partition, a rate, an end.

Records before a partition's range start (fetched before the seek took
effect) and at or after its end are dropped, not handled; a partition that
reached its end stays paused; the replay is finished when every partition
has committed its end. Commits carry the plan in their metadata, so a
restart resumes over the same range.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.batch_result import Record
from pipeline.metrics import Metrics
from pipeline.ratelimit import TokenBucket
from pipeline.replay import ReplayPlan

if TYPE_CHECKING:
    from pipeline.partition_worker import PartitionWorker


class ReplayGate:
    def __init__(self, plan: ReplayPlan, paused: set[TopicPartition], metrics: Metrics) -> None:
        self.plan = plan
        self._paused = paused
        self._metrics = metrics
        self._bucket = TokenBucket(plan.rate_per_s) if plan.rate_per_s else None
        self.reached_end: set[TopicPartition] = set()
        self.committed: dict[int, int] = dict(plan.resume_from)
        """What this replay's group has committed: read at its start, then its own commits."""

    def position(self, consumer: AIOKafkaConsumer, partitions: set[TopicPartition]) -> None:
        """Start each partition at its range (or where this replay got to); hold the rest.

        Synchronous, from what this replay knows it committed, so the runtime
        calls it the moment partitions are assigned: a seek after the first
        fetch would hand the worker records it already took (the position
        moves back), as a seek after awaiting the broker once did.
        """
        for tp in partitions:
            bounds = self.plan.ranges.get(tp.partition)
            committed = self.committed.get(tp.partition)
            if bounds is None or bounds.size == 0 or (committed or 0) >= bounds.end:
                self._hold(consumer, tp)
            elif committed is None or committed < bounds.start:
                consumer.seek(tp, bounds.start)

    def _hold(self, consumer: AIOKafkaConsumer, tp: TopicPartition) -> None:
        self.reached_end.add(tp)
        consumer.pause(tp)
        self._paused.add(tp)

    async def within_range(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, records: list[Record]
    ) -> list[Record]:
        """The records inside the range, after the rate limit; holds a partition at its end."""
        bounds = self.plan.ranges.get(tp.partition)
        if bounds is None:
            self._hold(consumer, tp)
            return []
        inside = [r for r in records if bounds.start <= r.offset < bounds.end]
        self._metrics.inc("replay_outside_range", len(records) - len(inside))
        if records[-1].offset + 1 >= bounds.end:
            self._hold(consumer, tp)
        if inside and self._bucket is not None:
            await self._bucket.acquire(len(inside))
        return inside

    async def commit(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        await consumer.commit(self.plan.commit_offsets(offsets))
        self.committed.update({tp.partition: offset for tp, offset in offsets.items()})

    async def finished(
        self, consumer: AIOKafkaConsumer, workers: dict[TopicPartition, PartitionWorker]
    ) -> bool:
        """Every partition committed to its end; a range ending in a gap gets its end committed."""
        finishing: dict[TopicPartition, int] = {}
        for partition, bounds in self.plan.ranges.items():
            if bounds.size == 0 or self.committed.get(partition, -1) >= bounds.end:
                continue
            tp = TopicPartition(self.plan.topic, partition)
            worker = workers.get(tp)
            if worker is None:
                return False
            if tp not in self.reached_end and await consumer.position(tp) >= bounds.end:
                self._hold(consumer, tp)  # the range ends in a gap (a transaction marker)
            if tp not in self.reached_end or worker.load or worker.tracker.in_progress:
                return False
            finishing[tp] = bounds.end
        if finishing:
            await self.commit(consumer, finishing)
        return True
