"""The partitions a replica holds: a bulkhead each, held back when full, drained on revoke.

The group's listener: on assignment a worker per partition (created before
any await, since the fetch may already hold their records); on revoke the
work in hand finishes within the drain deadline, is committed, and the
partition is let go. Also what the fetch loop asks each round: which
partitions to leave out (their bulkhead is full), which are idle (for the
gap count), whether the replica has caught up (readiness), whether a
partition is stuck (liveness).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Literal

from pipeline.kafka.port import Committed, Consumer, Record, TopicPartition
from pipeline.metric_names import CONSUMED, OFFSET_RESETS, REBALANCES
from pipeline.metrics import Metrics
from pipeline.runtime.commits import Committer
from pipeline.runtime.host import PartitionParts
from pipeline.runtime.partition_worker import PartitionWorker
from pipeline.runtime.quarantine import Suspicion, read_hands
from pipeline.runtime.retention_watch import RetentionWatch

log = logging.getLogger("pipeline.worker")


class Partitions:
    def __init__(
        self,
        parts: PartitionParts,
        consumer: Consumer,
        committer: Committer,
        metrics: Metrics,
        drain_deadline_s: float,
        leaving: asyncio.Event,
        offset_reset: Literal["earliest", "fail"] | None = "earliest",
    ) -> None:
        self.parts = parts
        self.consumer = consumer
        self.committer = committer
        self.metrics = metrics
        self.drain_deadline_s = drain_deadline_s
        self._leaving = leaving
        self._offset_reset = offset_reset
        """For a committed offset retention deleted (PipelineSettings.offset_reset); None: not
        checked."""
        """Set once the replica is stopping: partitions assigned then are not taken on."""
        self.workers: dict[TopicPartition, PartitionWorker] = {}
        self.paused: set[TopicPartition] = set()
        """Held back from the fetch: their bulkhead is full (pipeline.runtime.fetch_plan)."""
        self.ready = False
        self.peak_held = 0
        self._revoking: set[TopicPartition] = set()
        self._start_end_offsets: dict[TopicPartition, int] = {}
        self._nothing_to_catch_up: set[TopicPartition] = set()
        self._careful = asyncio.Lock()
        """One suspect record in hand at a time in this replica (pipeline.runtime.quarantine)."""
        self._retention = (
            RetentionWatch(consumer, self._deleted_while_running, self._deliver)
            if offset_reset is not None
            else None
        )
        """Records retention deleted under the running worker (pipeline.runtime.retention_watch)."""
        self._assignment_settled = False

    def _add_worker(self, tp: TopicPartition) -> PartitionWorker:
        """A bulkhead whose start offset is the first record it gets (the fetch position)."""
        worker = PartitionWorker(tp, self.parts, self.committer.open(tp))
        self.workers[tp] = worker
        return worker

    # -- the group's listener ------------------------------------------------------------------

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        if self._leaving.is_set():
            # Leaving: the client may still complete a rebalance while it closes.
            # Nothing will fetch for new partitions, so take none on.
            numbers = sorted(tp.partition for tp in assigned)
            log.info("assigned %s while leaving; not taking them", numbers)
            return
        self.metrics.inc(REBALANCES)
        self.parts.publishing.membership.regained()
        self._revoking.difference_update(assigned)
        # Workers first, with no await in between: the fetch loop may already
        # have records for these partitions.
        for tp in assigned:
            if tp not in self.workers:
                self._add_worker(tp)
        if not assigned:
            return
        partitions = list(assigned)
        ends = await self.consumer.end_offsets(partitions)
        beginnings = await self.consumer.beginning_offsets(partitions)
        self._start_end_offsets.update(ends)
        commits = {tp: await self.consumer.committed(tp) for tp in partitions}
        deleted = {
            tp: (committed.offset, beginnings[tp])
            for tp, committed in commits.items()
            if committed is not None and committed.offset < beginnings[tp]
        }
        if deleted and not await self._past_retention(deleted):
            return
        starts = {}
        for tp in partitions:
            committed = commits[tp]
            start = starts[tp] = max(committed.offset if committed else 0, beginnings[tp])
            if self._retention is not None:
                self._retention.starts_at(tp, start)
            if start >= ends[tp]:
                self._nothing_to_catch_up.add(tp)
        if self.parts.handling.processor.quarantine_after is not None:
            self._suspect(commits)
        for tp in partitions:
            worker = self.workers.get(tp)
            if worker is not None:
                worker.cleared.set()
        self._assignment_settled = True
        log.info("assigned %s", sorted(tp.partition for tp in assigned))

    def _suspect(self, commits: dict[TopicPartition, Committed | None]) -> None:
        """Partitions whose last owner ended with records in hand go over them carefully."""
        limit = self.parts.handling.processor.quarantine_after
        assert limit is not None
        for tp, committed in commits.items():
            hands = read_hands(committed)
            worker = self.workers.get(tp)
            if hands is None or worker is None:
                continue
            worker.suspicion = Suspicion(hands, limit, self._careful)
            worker.offsets.hands = hands  # kept in this owner's commits until gone over
            log.warning(
                "%s-%d: the last owner of this partition died or was dropped from the group "
                "with offsets %d..%d possibly in a handler%s; handling those one at a time "
                "(a record in hand at %d such ends is quarantined)",
                tp.topic,
                tp.partition,
                hands.first,
                hands.last,
                f" ({hands.strikes} end(s) with offset {hands.at} in hand)"
                if hands.at is not None
                else "",
                limit,
            )

    async def _deleted_while_running(self, deleted: dict[TopicPartition, tuple[int, int]]) -> bool:
        return await self._past_retention(deleted, "the worker's fetch position")

    async def _past_retention(
        self,
        deleted: dict[TopicPartition, tuple[int, int]],
        place: str = "the group's committed offset",
    ) -> bool:
        """The group's place was deleted by retention: go on from the log start, or stop.

        `deleted`: partition → (committed offset, or the position the running
        worker had reached; log start). Returns whether the replica goes on.
        The client itself moves an out-of-range position to the log start
        (auto.offset.reset=earliest); this makes it loud, counted, and, under
        `fail`, not done: those partitions' workers are dropped uncommitted and
        the replica exits.
        """
        policy = self._offset_reset
        if policy is None:
            return True
        reasons = []
        for tp, (committed, log_start) in sorted(deleted.items()):
            self.metrics.inc(
                OFFSET_RESETS,
                labels={"topic": tp.topic, "partition": str(tp.partition), "policy": policy},
            )
            reasons.append(
                f"{tp.topic}-{tp.partition}: {place} {committed} is before "
                f"the log start {log_start}; retention deleted {log_start - committed} "
                "record(s) it never handled"
            )
            if policy == "earliest":
                log.warning(
                    "%s. Going on from offset %d (offset_reset=earliest; set "
                    "PIPELINE_OFFSET_RESET=fail to stop instead)",
                    reasons[-1],
                    log_start,
                )
        if policy == "earliest":
            return True
        for tp in deleted:
            self._revoking.add(tp)  # records the client already fetched start no new worker
            self.committer.forget(tp)  # nothing they may have handled is committed
        await asyncio.gather(
            *(w.stop(0) for w in [self.workers.pop(tp, None) for tp in deleted] if w)
        )
        topics = ",".join(sorted({tp.topic for tp in deleted}))
        numbers = ",".join(str(tp.partition) for tp in sorted(deleted))
        group = self.parts.handling.processor.group_id
        reason = (
            "; ".join(reasons) + ". offset_reset=fail: decide where the group goes on with "
            f"`pipeline offsets reset --group {group} --topic {topics} "
            f"--partitions {numbers} --to-earliest` (or --to-datetime), then start the "
            "replicas again"
        )
        log.error("%s", reason)
        self.parts.handling.fail(reason)
        return False

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        # Until they are assigned again, records still arriving for these
        # partitions must not start a new worker behind the draining one.
        self._revoking.update(revoked)
        leaving = [self.workers.pop(tp) for tp in revoked if tp in self.workers]
        if self._retention is not None:
            for tp in revoked:
                self._retention.forget(tp)
        if not leaving:
            return
        clean = await self.drain(leaving)
        self.paused.difference_update(revoked)
        self._nothing_to_catch_up.difference_update(revoked)
        log.info(
            "revoked %s (%s)",
            sorted(tp.partition for tp in revoked),
            "drained" if clean else "drain incomplete",
        )

    async def drain(self, workers: list[PartitionWorker]) -> bool:
        """Finish the work in hand within the deadline, commit it, let the partitions go."""
        results = await asyncio.gather(*(worker.stop(self.drain_deadline_s) for worker in workers))
        # Work left in hand keeps its in-flight mark: the next owner counts this as a stall.
        # A worker the broker stopped says so; that is no record's fault.
        released = [
            clean or worker.broker_failed for worker, clean in zip(workers, results, strict=True)
        ]
        await self.committer.commit(
            [w.tp for w, free in zip(workers, released, strict=True) if not free]
        )
        await self.committer.commit(
            [w.tp for w, free in zip(workers, released, strict=True) if free], release=True
        )
        tps = [worker.tp for worker in workers]
        for tp in tps:
            self.committer.forget(tp)
        return all(results)

    async def drain_all(self) -> bool:
        if self._retention is not None:
            await self._retention.close()
        workers = list(self.workers.values())
        self.workers.clear()
        return await self.drain(workers) if workers else True

    # -- what the fetch loop asks ----------------------------------------------------------------

    def held(self) -> dict[TopicPartition, int]:
        held = {tp: worker.held for tp, worker in self.workers.items()}
        self.peak_held = max(self.peak_held, sum(held.values()))
        return held

    def offer(self, tp: TopicPartition, records: Sequence[Record]) -> None:
        worker = self.workers.get(tp)
        if worker is None and tp in self.consumer.assignment() and tp not in self._revoking:
            # Records can arrive while the assignment callback still runs.
            worker = self._add_worker(tp)
        if worker is None or worker.stopping.is_set():
            return
        if self._retention is None or self._retention.admit(tp, records):
            worker.offer(records)
            self.metrics.inc(CONSUMED, len(records))

    def _deliver(self, tp: TopicPartition, records: Sequence[Record]) -> None:
        """Records the retention watch held back, once it found nothing deleted (or went on)."""
        worker = self.workers.get(tp)
        if worker is not None and not worker.stopping.is_set():
            worker.offer(records)
            self.metrics.inc(CONSUMED, len(records))

    def idle(self) -> list[TopicPartition]:
        # Not before the assignment has read the commit: a gap skipped earlier would commit
        # over the in-flight mark it is about to read (pipeline.runtime.quarantine).
        return [
            tp for tp, worker in self.workers.items() if worker.idle and worker.cleared.is_set()
        ]

    def reconcile_pauses(self) -> None:
        """A partition whose bulkhead is full is held back from the fetch until it drains."""
        for tp, worker in self.workers.items():
            if tp in self.paused:
                if worker.may_resume():
                    self.paused.discard(tp)
            elif worker.wants_pause():
                self.paused.add(tp)

    def update_readiness(self) -> None:
        if self.ready or not self._assignment_settled:
            return
        ends = self._start_end_offsets
        # Caught up: every record before the end offset seen at assignment is
        # finished, or there was none to begin with.
        self.ready = all(
            worker.offsets.committable >= ends.get(tp, 0) or tp in self._nothing_to_catch_up
            for tp, worker in self.workers.items()
        )
        if self.ready:
            log.info("caught up with the end offsets seen at assignment: ready")

    def in_hand(self) -> list[str]:
        """`topic-partition@offset` of each record in a handler now (the watchdog's last word)."""
        return [
            f"{tp.topic}-{tp.partition}@{offset}"
            for tp, worker in list(self.workers.items())
            for offset in worker.handler.in_hand()
        ]

    def uncommitted(self) -> int:
        """Records taken and not committed, all partitions: what a death makes others redo."""
        return sum(worker.offsets.uncommitted for worker in list(self.workers.values()))

    def stalled(self, stall_s: float) -> str | None:
        """Why the replica is not live: a partition with lag and no progress for `stall_s`."""
        now = time.monotonic()
        for tp, worker in self.workers.items():
            committed = worker.offsets.committed
            # A partition that never had a record here has no position yet (committed
            # is -1): it is idle, not behind, however long it stays empty.
            behind = (self.consumer.highwater(tp) or 0) - committed if committed >= 0 else 0
            lag = max(behind, worker.load)
            stalled = now - worker.last_activity
            if lag > 0 and stalled > stall_s and not worker.waiting_on_dependency:
                return f"{tp.topic}-{tp.partition} has lag {lag} and no progress for {stalled:.0f}s"
        return None
