"""One assigned partition: a bounded queue and an ordered worker (the bulkhead).

Records are taken in batches, not one task per record; a batch is handled
(pipeline.runtime.batch_handler) and what it produced is published
(pipeline.runtime.batch_publisher). Offsets count as finished only when
those are acknowledged. While a batch's acknowledgements are outstanding
the next batch is already being handled; the producer keeps their order
per partition.

A slow or failing partition only fills its own queue; the runtime then
leaves that partition out of the fetch and nobody else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from pipeline.errors import NotAcknowledgedError
from pipeline.kafka.port import KafkaClientError, Record, TopicPartition
from pipeline.metric_names import BATCH_SECONDS
from pipeline.resilience.tasks import CANCEL_WAIT_S, cancel_and_wait
from pipeline.runtime.batch_handler import BatchHandler
from pipeline.runtime.batch_publisher import BatchPublisher
from pipeline.runtime.careful_pass import CarefulPass
from pipeline.runtime.commits import PartitionOffsets
from pipeline.runtime.host import Abandoned, PartitionParts
from pipeline.runtime.intake import Intake, mean_record_bytes
from pipeline.runtime.offset_tracker import PendingBatch
from pipeline.runtime.quarantine import CLAIM_AHEAD, Hands, Suspicion
from pipeline.runtime.record_queue import RecordQueue
from pipeline.runtime.restoration import Restoration, open_state
from pipeline.runtime.stage_times import StageClock, metrics_observer
from pipeline.stores.partition_state import BatchChanges
from pipeline.telemetry import tracing
from pipeline.telemetry.logs import bind_fields

log = logging.getLogger("pipeline.worker")

MAX_PENDING_ACKS = 3
DUPLICATE_BOUND_WAIT_S = 0.5


class PartitionWorker(CarefulPass):
    def __init__(
        self, tp: TopicPartition, parts: PartitionParts, offsets: PartitionOffsets
    ) -> None:
        self.tp = tp
        self.parts = parts
        self.processor = parts.handling.processor
        self.offsets = offsets
        """What this worker took and finished, and what is committed (pipeline.runtime.commits)."""
        self.stages = StageClock(metrics_observer(parts.handling.metrics))
        offsets.on_committed = self.stages.committed
        self.queue: RecordQueue[Record] = RecordQueue()
        self.intake = Intake(tp)
        self._record_bytes = 0.0
        self.stopping = asyncio.Event()
        self.state = open_state(parts.state, self.processor.state_stores, tp.partition)
        """The partition's stores, restored before its first record (None: no stores)."""
        self.restoration = (
            Restoration(self.state, parts.state, parts.handling.metrics, self._progressed)
            if self.state is not None and parts.state is not None
            else None
        )
        self.handler = BatchHandler(tp, parts.handling, self.stopping, self.state)
        self.publisher = BatchPublisher(tp, parts.publishing, self.handler)
        self._wakeup: asyncio.Future[None] | None = None
        """What the idle worker awaits; resolved by new records, an acknowledgement or stop."""
        self._draining = False
        self._holding = 0
        self.last_progress = time.monotonic()
        self._pending_acks: deque[tuple[asyncio.Future[Any], PendingBatch, BatchChanges | None]] = (
            deque()
        )
        self._topic_label = {"topic": tp.topic}
        self.cleared = asyncio.Event()
        """Set once the assignment read the commit and its in-flight mark (for quarantine)."""
        self._marks = self.processor.quarantine_after is not None
        if not self._marks:
            self.cleared.set()
        self.suspicion: Suspicion | None = None
        """Set when the last owner left records in hand: go one record at a time for a while."""
        self.broker_failed = False
        """Stopped by the broker (an output not acknowledged), not by a record: its in-flight
        mark is released on the way out, so the next owner counts no strike against it."""
        self.task = asyncio.ensure_future(self._run())

    def _progressed(self) -> None:
        """Restoring is progress: a long restore is slow, not stuck (liveness)."""
        self.last_progress = time.monotonic()

    def _log_fields(self) -> dict[str, object]:
        return {"topic": self.tp.topic, "partition": self.tp.partition}

    @property
    def waiting_on_dependency(self) -> bool:
        return self.handler.waiting_on_dependency

    @property
    def last_activity(self) -> float:
        """The later of its last progress and its last handler timeout: a partition whose
        hung calls are being cancelled is slow, not stuck."""
        return max(self.last_progress, self.handler.deadline.last_timeout)

    # -- intake, called by the fetch loop ------------------------------------

    def offer(self, records: Sequence[Record]) -> None:
        if self._draining or not records:
            return  # being revoked or stopped: the next owner fetches them again
        records = self.intake.fresh(records)
        if not records:
            return
        self.queue.extend(records)
        self.stages.fetched(records)
        self._record_bytes = mean_record_bytes(records)
        self._wake()

    def _wake(self, _: object = None) -> None:
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    @property
    def queued_bytes(self) -> float:
        return len(self.queue) * self._record_bytes

    @property
    def held(self) -> int:
        """Records in memory: queued, being handled, or with outputs awaiting acks."""
        return len(self.queue) + self._holding + self.offsets.in_progress

    @property
    def load(self) -> int:
        """Records not yet committed: queued, or taken and awaiting the commit.

        What the bulkhead's pause and resume marks count (a SIGKILL redoes these);
        `held` counts what is in memory.
        """
        return len(self.queue) + self._holding + self.offsets.uncommitted

    @property
    def idle(self) -> bool:
        """Nothing queued, nothing taken: every record offered so far is finished."""
        return (
            not self.queue
            and self.offsets.in_progress == 0
            and not self._draining
            and not self._holding
        )

    def wants_pause(self) -> bool:
        return (
            self.load >= self.processor.queue_records
            or self.queued_bytes >= self.processor.queue_bytes
        )

    def may_resume(self) -> bool:
        return (
            self.load <= self.processor.queue_records // 2
            and self.queued_bytes <= self.processor.queue_bytes // 2
        )

    # -- the ordered worker ---------------------------------------------------

    async def _run(self) -> None:
        bind_fields(self._log_fields)
        try:
            if not self.cleared.is_set():
                await self._until_cleared()
            if self.restoration is not None:
                await self.restoration.run(self.stopping)
            while not self.stopping.is_set():
                if not self.queue:
                    self._settle_done()
                    if self.queue:
                        continue
                    if self._draining:
                        break
                    await self._idle()
                    continue
                room = self.processor.queue_records - self.offsets.uncommitted
                if room < min(len(self.queue), self.processor.batch_records):
                    # The duplicate bound: never hold more uncommitted records.
                    await self._settle_acks(0)
                    if self.processor.queue_records - self.offsets.uncommitted >= min(
                        len(self.queue), self.processor.batch_records
                    ):
                        continue  # exactly-once: the transactions committed them
                    await self.offsets.wait_for_commit(self.stopping, DUPLICATE_BOUND_WAIT_S)
                    continue
                size = min(room, self.processor.batch_records)
                if self.suspicion is not None:
                    handled_already = await self._under_suspicion(size)
                    if handled_already:
                        await self._handle_batch(handled_already, claim=False)
                    continue
                await self._handle_batch(self.queue.take(size))
            await self._settle_acks(0)
        except Abandoned:
            for acks, _, _ in self._pending_acks:
                acks.add_done_callback(_outcome_read)  # abandoned with the batch in hand
            return
        except Exception as exc:
            self.broker_failed = isinstance(exc, (KafkaClientError, NotAcknowledgedError))
            log.exception(
                "partition %s-%d failed with records from offset %d in hand; stopping the worker",
                self.tp.topic,
                self.tp.partition,
                self.offsets.committable,
            )
            self.parts.handling.fail(
                f"partition {self.tp.topic}-{self.tp.partition} worker crashed"
            )
            for acks, _, _ in self._pending_acks:
                # Their outcomes no longer matter; read them so none is reported as lost.
                acks.add_done_callback(_outcome_read)
            raise
        finally:
            if self.state is not None:
                self.state.drop_unacknowledged()

    async def _handle_batch(self, batch: list[Record], claim: bool = True) -> None:
        """`claim`: the partition's mark is this owner's to move (not while a dead owner's
        records are gone over: they were handled already, and its mark must stay)."""
        exactly_once = self.parts.publishing.transactions is not None
        if (
            claim
            and self._marks
            and not exactly_once
            and not self.offsets.reaches(batch[-1].offset)
            and not await self._hold_until_accepted(
                # Say how far this owner's hands reach before a handler can stop the loop
                # (pipeline.runtime.quarantine).
                Hands(batch[0].offset, batch[-1].offset + CLAIM_AHEAD),
                batch[0].offset,
                len(batch),
            )
        ):
            return  # leaving: the batch was not run, the next owner reads it again
        taken = self.offsets.started(batch[0].offset, batch[-1].offset, len(batch))
        timed = self.stages.started(batch[-1].offset)
        started = time.perf_counter()
        with tracing.batch_span(self.tp.topic, self.tp.partition, len(batch)):
            result = await self.handler.handle(batch)
        self.stages.handled(timed)
        self.parts.handling.metrics.observe(
            BATCH_SECONDS, time.perf_counter() - started, self._topic_label
        )
        # A batch published while an earlier one's acks are out does not
        # overtake it if that one fails: the idempotent producer fails
        # the batches in flight behind a failed one.
        acks = await self.publisher.publish(result, taken.end)
        self.stages.on_acknowledged(acks, timed, taken.end, exactly_once)
        await self._published(acks, taken, result.state_changes)

    async def _published(
        self, acks: asyncio.Future[Any], taken: PendingBatch, changes: BatchChanges | None
    ) -> None:
        self._pending_acks.append((acks, taken, changes))
        await self._settle_acks(MAX_PENDING_ACKS)

    async def _until_cleared(self) -> None:
        stopping = asyncio.ensure_future(self.stopping.wait())
        cleared = asyncio.ensure_future(self.cleared.wait())
        try:
            await asyncio.wait((stopping, cleared), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            cleared.cancel()

    async def _idle(self) -> None:
        """Wait for new records or the oldest acknowledgement, whichever comes first.

        New records never wait for acks. One plain future, not tasks racing in
        asyncio.wait: a lightly loaded worker idles here hundreds of times a
        second per partition, and those tasks cost (docs/design-notes.md#idle-wait).
        """
        # Nothing awaits between the caller's empty-queue check and here, so
        # records offered meanwhile are seen by that check, not lost.
        self._wakeup = asyncio.get_running_loop().create_future()
        oldest = self._pending_acks[0][0] if self._pending_acks else None
        if oldest is not None:
            oldest.add_done_callback(self._wake)
        try:
            await self._wakeup
        finally:
            self._wakeup = None
            if oldest is not None:
                oldest.remove_done_callback(self._wake)

    def _finished(self, taken: PendingBatch, changes: BatchChanges | None) -> None:
        if changes is not None:
            assert self.state is not None
            self.state.acknowledged(changes)  # before the offset can be committed
        # With exactly-once, the transaction committed this offset along with the outputs.
        self.offsets.finished(
            taken, committed_with_outputs=self.parts.publishing.transactions is not None
        )
        self.parts.room_freed.set()
        self.last_progress = time.monotonic()

    def _settle_done(self) -> None:
        """Finish the acknowledged batches at the head, without waiting for others."""
        while self._pending_acks and self._pending_acks[0][0].done():
            acks, taken, changes = self._pending_acks.popleft()
            acks.result()  # a failed publish raises: the worker stops, nothing is committed
            self._finished(taken, changes)

    async def _settle_acks(self, keep: int) -> None:
        while len(self._pending_acks) > keep:
            acks, taken, changes = self._pending_acks[0]
            await acks  # a failed publish raises: the worker stops, nothing is committed
            self._pending_acks.popleft()
            self._finished(taken, changes)

    # -- revoke and shutdown ----------------------------------------------------

    async def stop(self, deadline_s: float) -> bool:
        """Finish the batch in hand within the deadline; drop what is only queued.

        Returns whether everything taken was finished (so nothing will be
        redone by the next owner).
        """
        self.queue.clear()
        self._draining = True
        self._wake()
        if self.restoration is not None and self.restoration.running:
            self.stopping.set()  # nothing in hand: a revoke does not wait for a restoration
        try:
            await asyncio.wait_for(asyncio.shield(self.task), timeout=deadline_s)
        except TimeoutError:
            log.warning(
                "%s-%d: work in hand did not finish within %.1fs; leaving it uncommitted",
                self.tp.topic,
                self.tp.partition,
                deadline_s,
            )
        except Exception:  # noqa: BLE001 - already logged by the worker task
            pass
        self.stopping.set()
        # A handler stuck in a call that ignores `stopping`: cut it off.
        await cancel_and_wait(
            self.task, CANCEL_WAIT_S, f"the handler on {self.tp.topic}-{self.tp.partition}"
        )
        if self.state is not None:
            # Off the loop: a store flushing its memtables on close must not hold up the
            # heartbeats and the other partitions' revokes (as in Quix Streams #1131).
            await asyncio.to_thread(self.state.close)
            if self.parts.state is not None:
                self.parts.state.handoff.returned(self.tp.partition)
        return self.offsets.in_progress == 0


def _outcome_read(acks: asyncio.Future[Any]) -> None:
    if not acks.cancelled():
        acks.exception()
