"""The partition worker's part in quarantine: the careful pass over a dead owner's records.

Each record a handler gets past what the partition's mark covers is
named in a commit first (pipeline.runtime.quarantine); a commit refused
(a rebalance under way) is retried, never run past. After an owner died
with records in hand, its successor goes over them one at a time, each
record's strike committed before its handler runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from pipeline.kafka.port import Record, TopicPartition
from pipeline.processor import Processor
from pipeline.runtime.batch_handler import BatchHandler
from pipeline.runtime.batch_publisher import BatchPublisher
from pipeline.runtime.commits import PartitionOffsets
from pipeline.runtime.host import PartitionParts
from pipeline.runtime.offset_tracker import PendingBatch
from pipeline.runtime.quarantine import Hands, Suspicion, quarantined
from pipeline.runtime.record_queue import RecordQueue
from pipeline.runtime.stage_times import StageClock
from pipeline.stores.partition_state import BatchChanges

log = logging.getLogger("pipeline.worker")

MARK_RETRY_S = 0.2
"""Between tries of a refused in-hand mark: a rebalance usually ends within a second."""


class CarefulPass:
    """Mixed into the partition worker, whose state it shares."""

    tp: TopicPartition
    parts: PartitionParts
    processor: Processor[Any]
    offsets: PartitionOffsets
    stages: StageClock
    queue: RecordQueue[Record]
    handler: BatchHandler
    publisher: BatchPublisher
    stopping: asyncio.Event
    suspicion: Suspicion | None
    _draining: bool
    _holding: int
    """Records out of the queue and not yet started while their mark is committed: still
    held (the in-flight bound counts them) and not idle (no gap is skipped past them)."""
    _wakeup: asyncio.Future[None] | None

    async def _settle_acks(self, keep: int) -> None:
        raise NotImplementedError

    async def _published(
        self, acks: asyncio.Future[Any], taken: PendingBatch, changes: BatchChanges | None
    ) -> None:
        raise NotImplementedError

    async def _hold(self, hands: Hands, next_offset: int) -> bool:
        """Commit the mark; with exactly-once, only once no transaction is in flight: a plain
        commit landing after a transaction's later offsets would move the group back."""
        if self.parts.publishing.transactions is not None:
            await self._settle_acks(0)
        return await self.offsets.hold(hands, next_offset)

    async def _hold_until_accepted(self, hands: Hands, next_offset: int, count: int) -> bool:
        """The mark committed before a handler gets what it names, retried while refused.

        A refusal is a rebalance under way. Running the records anyway would
        let a record that kills its owner do so without its strike, and so
        cost one more death than quarantine promises (seen on confluent under
        `pipeline scale`, where each death's replacement joins the group).
        False: this owner is leaving the partition, and must not run them.
        """
        self._holding = count
        try:
            while not await self._hold(hands, next_offset):
                if self.stopping.is_set() or self._draining:
                    return False
                self._wakeup = asyncio.get_running_loop().create_future()
                try:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wakeup, MARK_RETRY_S)  # or a stop's wake
                finally:
                    self._wakeup = None
                if self.stopping.is_set() or self._draining:
                    return False
            return True
        finally:
            self._holding = 0

    async def _under_suspicion(self, size: int) -> list[Record]:
        """A batch of records the dead owner handled already, or none once records in its
        range were handled carefully (or the suspicion is over).

        Records before the range go in batches that stop short of it; records
        in it, one at a time; after it, the suspicion is over.
        """
        suspicion = self.suspicion
        assert suspicion is not None
        if suspicion.before(self.queue.peek().offset):
            return self.queue.take_while(size, lambda record: suspicion.before(record.offset))
        if suspicion.careful_at(self.queue.peek().offset):
            await self._carefully(suspicion)
            return []
        self.suspicion = None
        self.offsets.hands = None  # the dead owner's mark no longer says anything
        log.info("%s-%d: past the records in hand at the last owner's end; batches again", *self.tp)
        return []

    async def _carefully(self, suspicion: Suspicion) -> None:
        """The records in hand at the last owner's end, one at a time, each marked first.

        In this replica only one partition goes carefully at a time: when a
        record blocks the loop, the others are waiting their turn, not in
        hand, and gain no strike. Its partition keeps the turn until its
        range is done. A record the last owners ended with
        `quarantine_after` times is dead-lettered instead of run.
        """
        async with suspicion.one_at_a_time:
            while self.queue and suspicion.careful_at(self.queue.peek().offset):
                if self.stopping.is_set() or self._draining:
                    return
                if self.offsets.uncommitted >= self.processor.queue_records:
                    break  # the duplicate bound: the run loop waits for a commit
                [record] = self.queue.take(1)
                self.stages.skip_through(record.offset)
                strikes = suspicion.hands.strikes_on(record.offset)
                if strikes < suspicion.limit:
                    hands = suspicion.hands
                    if not await self._hold_until_accepted(
                        Hands(hands.first, hands.last, strikes + 1, record.offset),
                        record.offset,
                        1,
                    ):
                        return  # leaving: not run, its count as the last owners left it
                taken = self.offsets.started(record.offset, record.offset, 1)
                if strikes >= suspicion.limit:
                    result = quarantined(self.parts.handling, record, strikes)
                else:
                    result = await self.handler.handle([record])
                acks = await self.publisher.publish(result, taken.end)
                await self._published(acks, taken, result.state_changes)
            hands = suspicion.hands
            await self._hold(Hands(hands.first, hands.last), hands.first)  # (records started)
