"""Commits: each partition's low-water mark of finished work, committed to the group.

A partition's worker reports what it takes and finishes (`PartitionOffsets`);
the `Committer` commits every interval, when a worker asks (the duplicate
bound), on revoke and at the end. This module is the offset trackers' only
writer: workers report through it, the committer marks what was committed,
and offsets the fetch passed over without a record (transaction markers,
aborted or compacted records) are counted as done here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable

from pipeline.kafka.port import Consumer, KafkaClientError, TopicPartition, metadata_of
from pipeline.metric_names import COMMITS
from pipeline.metrics import Metrics
from pipeline.runtime.offset_tracker import OffsetTracker, PendingBatch
from pipeline.runtime.quarantine import Hands

log = logging.getLogger("pipeline.worker")


class PartitionOffsets:
    """One partition's progress: what its worker took and finished, and what is committed."""

    def __init__(self, tp: TopicPartition, committer: Committer) -> None:
        self.tp = tp
        self._tracker = OffsetTracker()
        self._committer = committer
        self.hands: Hands | None = None
        """What this partition's commits say may be in a handler (pipeline.runtime.quarantine):
        this owner's last mark, or the dead owner's while its records are gone over again."""
        self._struck: int | None = None
        """The record this owner committed a strike on before running it."""
        self.on_committed: Callable[[int], None] = lambda offset: None
        """Told each offset committed (pipeline.runtime.stage_times times the commit)."""

    def started(self, first: int, last: int, count: int) -> PendingBatch:
        return self._tracker.started(first, last, count)

    def finished(self, batch: PendingBatch, committed_with_outputs: bool) -> None:
        """A batch is done; `committed_with_outputs` when a transaction committed its offset."""
        self._tracker.finished(batch)
        if committed_with_outputs:
            self._tracker.mark_committed(batch.end)

    @property
    def committable(self) -> int:
        return self._tracker.committable

    @property
    def committed(self) -> int:
        return self._tracker.committed

    @property
    def in_progress(self) -> int:
        return self._tracker.in_progress

    @property
    def uncommitted(self) -> int:
        return self._tracker.uncommitted

    async def wait_for_commit(self, stopping: asyncio.Event, limit_s: float) -> None:
        """Ask for a commit now and wait for one (or for `stopping`): the duplicate bound."""
        self._committer.request()
        waiters = [
            asyncio.ensure_future(self._committer.committed_signal.wait()),
            asyncio.ensure_future(stopping.wait()),
        ]
        try:
            await asyncio.wait(waiters, timeout=limit_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def reaches(self, offset: int) -> bool:
        """Whether the partition's mark already says `offset` may be in a handler."""
        return self.hands is not None and self.hands.covers(offset) and self.hands.at is None

    def metadata(self) -> str:
        """The mark a commit of this partition carries now; none once everything it names
        is committed (nothing of it can be in a handler any more)."""
        hands, committable = self.hands, self._tracker.committable
        if hands is None or hands.last < committable:
            return ""
        if hands.at is not None and hands.at < committable:
            return Hands(hands.first, hands.last).encode()  # its record is done: no strike
        return hands.encode()

    def strikes_kept(self) -> str:
        """The mark a clean hand-over still commits: a record's strikes, while the careful
        pass has not reached it (a rebalance between two deaths must not reset the count)."""
        hands = self.hands
        if hands is None or hands.at is None or hands.at < self._tracker.committable:
            return ""
        if hands.at == self._struck:
            # Released with it still in hand: the broker stopped this owner (an output not
            # acknowledged), which is no fault of the record's; its own strike is taken back.
            if hands.strikes <= 1:
                return ""
            return Hands(hands.first, hands.last, hands.strikes - 1, hands.at).encode()
        return hands.encode()

    async def hold(self, hands: Hands, next_offset: int) -> bool:
        """Commit what is finished with `hands` as the mark, before a handler gets them.

        `next_offset`: the first record the handler is to get, committed
        where nothing of the partition was started yet. False: refused (a
        rebalance under way); the caller must not hand the records over
        until a retry is accepted, or a death in them counts nothing.
        """
        offset = self._tracker.committable
        if offset < 0:
            offset = next_offset
        if not await self._committer.mark({self.tp: offset}, {self.tp: hands.encode()}):
            return False
        self.hands = hands
        self._struck = hands.at
        self._tracker.mark_committed(offset)
        return True

    # -- for the committer ------------------------------------------------------------------

    def skip_to(self, offset: int) -> None:
        self._tracker.skip_to(offset)

    def mark_committed(self, offset: int) -> None:
        self._tracker.mark_committed(offset)
        self.on_committed(offset)


class Committer:
    def __init__(
        self, consumer: Consumer, interval_s: float, metrics: Metrics, marks: bool = True
    ) -> None:
        """`marks`: commits made while running carry the in-flight mark (quarantine on)."""
        self.consumer = consumer
        self.interval_s = interval_s
        self.metrics = metrics
        self.marks = marks
        self.partitions: dict[TopicPartition, PartitionOffsets] = {}
        self.committed_signal = asyncio.Event()
        """Set and cleared after every successful commit: workers at the bound wait on it."""
        self._requested = asyncio.Event()
        self._done = asyncio.Event()

    def open(self, tp: TopicPartition) -> PartitionOffsets:
        offsets = self.partitions[tp] = PartitionOffsets(tp, self)
        return offsets

    def forget(self, tp: TopicPartition) -> None:
        self.partitions.pop(tp, None)

    def request(self) -> None:
        self._requested.set()

    async def run(self) -> None:
        """Commit every interval or when asked, until `stop`.

        It ends on a flag, not on cancellation alone: Python 3.11's wait_for
        swallows a cancel that lands as its timeout fires, and a loop that
        only a cancel can end then runs on, and the worker never exits.
        """
        while not self._done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._requested.wait(), self.interval_s)
            self._requested.clear()
            await self.commit(list(self.partitions))

    def stop(self) -> None:
        self._done.set()
        self._requested.set()  # wake it to see the flag

    async def commit(self, tps: Iterable[TopicPartition], release: bool = False) -> None:
        """Commit these partitions' finished work; a refusal (a rebalance) is retried later.

        `release`: nothing of theirs is in hand any more (a clean drain), so
        the commit goes without the in-flight mark, also where nothing new
        was finished since the last one; only a record's strikes that the
        careful pass has not reached yet are kept (pipeline.runtime.quarantine).
        """
        found = [self.partitions[tp] for tp in tps if tp in self.partitions]
        offsets = {p.tp: p.committable for p in found if p.committable > p.committed}
        if release and self.marks:
            for p in found:
                if p.tp not in offsets and p.hands is not None and p.committed >= 0:
                    offsets[p.tp] = p.committed
        if not offsets:
            return
        try:
            metadata = self._released(offsets) if release else self._metadata(offsets)
            await self.consumer.commit(offsets, metadata)
        except KafkaClientError as exc:
            # A rebalance is under way; the revoke handler commits what is finished.
            log.warning("commit of %d partitions failed (%s); will retry", len(offsets), exc)
            return
        for offsets_of in found:
            if offsets_of.tp in offsets:
                offsets_of.mark_committed(offsets[offsets_of.tp])
                if release and not metadata_of(metadata, offsets_of.tp):
                    offsets_of.hands = None
        self.metrics.inc(COMMITS)
        self.committed_signal.set()
        self.committed_signal.clear()

    async def confirm_membership(self) -> bool:
        """Whether the group coordinator still counts this member as the partitions' owner.

        A commit of their finished work (at least what is committed already)
        is accepted only from a member of the current generation.
        """
        offsets = {
            p.tp: max(p.committable, p.committed)
            for p in self.partitions.values()
            if max(p.committable, p.committed) >= 0
        }
        if not offsets:
            return True
        try:
            await self.consumer.commit(offsets, self._metadata(offsets))
        except KafkaClientError as exc:
            log.info("membership check: the commit was refused (%s)", exc)
            return False
        for tp, offset in offsets.items():
            still_here = self.partitions.get(tp)  # a revoke may have come meanwhile
            if still_here is not None:
                still_here.mark_committed(offset)
        return True

    def _released(self, offsets: dict[TopicPartition, int]) -> dict[TopicPartition, str]:
        if not self.marks:
            return {}
        return {tp: self.partitions[tp].strikes_kept() for tp in offsets if tp in self.partitions}

    def _metadata(self, offsets: dict[TopicPartition, int]) -> dict[TopicPartition, str]:
        if not self.marks:
            return {}
        return {tp: self.partitions[tp].metadata() for tp in offsets if tp in self.partitions}

    async def mark(
        self, offsets: dict[TopicPartition, int], marks: dict[TopicPartition, str]
    ) -> bool:
        """Commit offsets with these marks; False: refused (a rebalance under way)."""
        try:
            await self.consumer.commit(offsets, marks)
        except KafkaClientError as exc:
            log.warning("in-hand mark for %d partition(s) refused (%s)", len(offsets), exc)
            return False
        return True

    def skip_gaps(self, idle: Iterable[TopicPartition]) -> None:
        """Count offsets the fetch passed over without a record as done, on idle partitions.

        A transaction's commit marker takes an offset and is never handed
        over, nor are aborted or compacted records; without this a worker
        reading a transactional topic would commit "last record + 1", which
        is the marker, and show lag 1 forever (never ready, failing liveness
        when idle, a phantom to the autoscaler).
        """
        skipped = False
        for tp in idle:
            offsets = self.partitions.get(tp)
            position = self.consumer.known_position(tp)
            if offsets is not None and position is not None and position > offsets.committable:
                offsets.skip_to(position)
                skipped = True
        if skipped:
            self.request()
