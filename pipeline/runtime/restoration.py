"""A partition's stores brought up to their changelogs before its first record.

Each local copy knows the changelog offset it reflects, so only the tail
is read: nothing on a restart on the same disk with nothing new, the
whole log on a new disk. A copy that claims more than its changelog holds
(the topic was deleted and made again) is wiped and restored whole; one
whose place was compacted or deleted away reads from the log start, which
holds every surviving key. Runs in the partition's own worker, so other
partitions keep processing, and a revoke meanwhile just ends it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.kafka.port import Consumer, ConsumerOptions, Record, TopicPartition
from pipeline.metric_names import STATE_RESTORED
from pipeline.metrics import Metrics
from pipeline.runtime.host import StateParts
from pipeline.stores.partition_state import PartitionState
from pipeline.stores.store_spec import Store

log = logging.getLogger("pipeline.worker")

RESTORE_FETCH_BYTES = 8 * 1024 * 1024
RESTORE_FETCH_RECORDS = 50_000
PROGRESS_EVERY_S = 5.0


@dataclass(frozen=True)
class RestoreReport:
    records: int
    seconds: float


def open_state(
    parts: StateParts | None, stores: tuple[Store[Any], ...], partition: int
) -> PartitionState | None:
    """The partition's local copies, opened (not yet restored); None without stores."""
    if parts is None:
        return None
    parts.handoff.taking(partition)
    return PartitionState(stores, parts.group, parts.directory, partition, parts.bounds)


class Restoration:
    """A partition's restoration as its worker runs it: watched by a gauge, counted as the
    partition's progress (a long restore is slow, not stuck), ended at once by a revoke."""

    def __init__(
        self,
        state: PartitionState,
        parts: StateParts,
        metrics: Metrics,
        progressed: Callable[[], None],
    ) -> None:
        self.state = state
        self.parts = parts
        self.metrics = metrics
        self.progressed = progressed
        self.running = False
        self.remaining = 0
        """Changelog records still to read back before the partition's first record."""

    async def run(self, stopping: asyncio.Event) -> RestoreReport:
        self.running = True
        try:
            return await restore(self.state, self.parts, self.metrics, stopping, self._heard)
        finally:
            self.running = False
            self.progressed()

    def _heard(self, remaining: int) -> None:
        self.remaining = remaining
        self.progressed()


async def log_ends(
    parts: StateParts, consumer: Consumer, tps: list[TopicPartition]
) -> dict[TopicPartition, int]:
    """Where the changelogs end, whatever is committed: what a copy may never be past.

    A read_committed consumer's end is the last stable offset, and a dead owner's open
    transaction holds that back (until the transaction times out) below the transactions
    its successor committed since; a copy holding those is not ahead of its changelog, and
    wiping it would lose them.
    """
    if not parts.read_committed:
        return await consumer.end_offsets(tps)
    reader = parts.clients.consumer(ConsumerOptions())
    await reader.start()
    try:
        return await reader.end_offsets(tps)
    finally:
        await reader.stop()


def changes_in(
    records: Sequence[Record], end: int | None = None
) -> tuple[dict[bytes, bytes | None], int]:
    """Changelog records as a store's changes (the last per key; None: deleted) and the offset
    of the last one taken (-1: none); those at or past `end` are left for later."""
    changes: dict[bytes, bytes | None] = {}
    last = -1
    for record in records:
        if end is not None and record.offset >= end:
            break
        if record.key is not None:
            changes[record.key] = record.value
            last = record.offset
    return changes, last


async def restore(
    state: PartitionState,
    parts: StateParts,
    metrics: Metrics,
    stopping: asyncio.Event,
    on_progress: Callable[[int], None] = lambda remaining: None,
) -> RestoreReport:
    """Read each store's changelog tail for this partition into its local copy; `on_progress`
    hears the records still to read after each fetch (0 at the end)."""
    started = time.monotonic()
    partition = state.partition
    consumer = parts.clients.consumer(
        ConsumerOptions(
            isolation="read_committed" if parts.read_committed else "read_uncommitted",
            max_partition_fetch_bytes=RESTORE_FETCH_BYTES,
            fetch_max_bytes=RESTORE_FETCH_BYTES,
        )
    )
    await consumer.start()
    total = 0
    try:
        by_tp = {
            TopicPartition(topic, partition): store for store, topic in state.changelogs.items()
        }
        tps = list(by_tp)
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        beginnings = await consumer.beginning_offsets(tps)
        log_end = await log_ends(parts, consumer, tps)
        remaining: dict[TopicPartition, int] = {}
        for tp, store in by_tp.items():
            local = state.local[store]
            position = local.position
            if position > log_end[tp]:
                log.warning(
                    "%s is at changelog offset %d but %s-%d ends at %d (the topic was made "
                    "again?); wiping it and restoring it whole",
                    local.what,
                    position,
                    tp.topic,
                    partition,
                    log_end[tp],
                )
                local.wipe()
                position = 0
            start = max(position, beginnings[tp])
            if start < ends[tp]:
                consumer.seek(tp, start)
                remaining[tp] = start
            else:
                consumer.pause(tp)
        if not remaining:
            return RestoreReport(0, time.monotonic() - started)
        behind = sum(ends[tp] - start for tp, start in remaining.items())
        on_progress(behind)
        log.info("partition %d: restoring %d changelog record(s) of its stores", partition, behind)
        last_report = time.monotonic()
        while remaining:
            if stopping.is_set():
                log.info(
                    "partition %d: restoration ended by a revoke or stop after %d of %d "
                    "record(s); the next owner goes on from there",
                    partition,
                    total,
                    behind,
                )
                return RestoreReport(total, time.monotonic() - started)
            # A client with records buffered answers without yielding: let the heartbeats
            # and the partitions that are processing have the loop between two rounds.
            await asyncio.sleep(0)
            fetched = await consumer.fetch(list(remaining), 0.5, RESTORE_FETCH_RECORDS)
            for tp, records in fetched.items():
                store = by_tp[tp]
                changes, last = changes_in(records, ends[tp])
                if last >= 0:
                    state.local[store].write(changes, last + 1)
                    total += len(changes)
                    metrics.inc(STATE_RESTORED, len(changes), labels={"store": store})
            positions = {tp: await consumer.position(tp) for tp in remaining}
            for tp, position in positions.items():
                if position >= ends[tp]:
                    state.local[by_tp[tp]].write({}, ends[tp])
                    consumer.pause(tp)
                    del remaining[tp]
            on_progress(sum(max(0, ends[tp] - positions[tp]) for tp in remaining))
            if time.monotonic() - last_report > PROGRESS_EVERY_S:
                last_report = time.monotonic()
                log.info(
                    "partition %d: restored %d of %d changelog record(s)", partition, total, behind
                )
        on_progress(0)
        seconds = time.monotonic() - started
        log.info("partition %d: stores restored (%d record(s) in %.1fs)", partition, total, seconds)
        return RestoreReport(total, seconds)
    finally:
        await consumer.stop()
