"""Warm copies of other replicas' partitions, so a failover restores a tail, not a whole store.

With `Processor(standbys=N)`, each replica reads the changelogs of the
partitions the group's description places with it
(pipeline.runtime.standby_placement) into local copies laid out exactly
as an owner's: the same directory, the same recorded changelog position.
When such a partition is assigned to it, its worker opens that copy and
the restoration (pipeline.runtime.restoration) reads only what the copy
has not seen yet: the last fetch's worth, not the whole log.

A copy is a reader of the changelog and nothing else: it never writes
one, and it follows what a restore would read (committed transactions
only under exactly-once), so a stale or lost copy costs restore time,
never correctness. RocksDB opens a directory once, so a copy is closed,
on the event loop and before anything else runs, when its partition's
worker is about to open it (`taking`), and kept again only once that
worker has closed it (`returned`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.kafka.port import (
    Admin,
    Consumer,
    ConsumerOptions,
    Record,
    TopicPartition,
)
from pipeline.metric_names import STANDBY_PARTITIONS, STANDBY_RECORDS
from pipeline.metrics import Metrics
from pipeline.processor import Processor
from pipeline.runtime.host import StateParts
from pipeline.runtime.restoration import (
    RESTORE_FETCH_BYTES,
    RESTORE_FETCH_RECORDS,
    changes_in,
    log_ends,
)
from pipeline.runtime.standby_placement import standby_partitions
from pipeline.stores.local_store import LocalStore
from pipeline.stores.partition_state import PartitionState
from pipeline.stores.store_spec import Store

log = logging.getLogger("pipeline.worker")

REFRESH_S = 3.0
"""How often the group's description is read again: other members' rebalances reach this
replica only through it when its own assignment did not change."""
FETCH_WAIT_S = 0.5


class Standbys:
    def __init__(
        self,
        parts: StateParts,
        stores: tuple[Store[Any], ...],
        source_topic: str,
        me: str,
        copies: int,
        metrics: Metrics,
    ) -> None:
        """`me`: this replica's client id in the group's description; `copies`: how many
        replicas keep each partition warm besides its owner."""
        self.parts = parts
        self.stores = stores
        self.source_topic = source_topic
        self.me = me
        self.copies = copies
        self.metrics = metrics
        self.held: dict[int, PartitionState] = {}
        """Partition → its warm copies, open."""
        self._in_use: set[int] = set()
        """Partitions this replica's workers have open: never kept as copies meanwhile."""
        self._changed = asyncio.Event()
        self._assigned: list[TopicPartition] = []
        self._describe_failed = False
        metrics.gauge(STANDBY_PARTITIONS, lambda: {(): float(len(self.held))})

    @classmethod
    def of(
        cls, processor: Processor[Any], parts: StateParts, me: str | None, metrics: Metrics
    ) -> Standbys:
        assert me is not None, "a replica keeping standbys names itself to the group"
        return cls(
            parts,
            processor.state_stores,
            processor.source.name,
            me,
            processor.standbys,
            metrics,
        )

    # -- the handoff with the partition workers (pipeline.runtime.host.CopyHandoff) --

    def taking(self, partition: int) -> None:
        self._in_use.add(partition)
        state = self.held.pop(partition, None)
        if state is not None:
            state.close()
            log.info("partition %d: its warm copy becomes the owner's", partition)
        self._changed.set()

    def returned(self, partition: int) -> None:
        self._in_use.discard(partition)
        self._changed.set()

    # -- the copies' own loop --

    async def run(self) -> None:
        """Keep the placed copies current until cancelled; they are closed then."""
        consumer = self.parts.clients.consumer(
            ConsumerOptions(
                isolation="read_committed" if self.parts.read_committed else "read_uncommitted",
                max_partition_fetch_bytes=RESTORE_FETCH_BYTES,
                fetch_max_bytes=RESTORE_FETCH_BYTES,
            )
        )
        admin = self.parts.clients.admin()
        next_refresh = 0.0
        try:
            await admin.start()
            await consumer.start()
            while True:
                if self._changed.is_set() or time.monotonic() >= next_refresh:
                    self._changed.clear()
                    next_refresh = time.monotonic() + REFRESH_S
                    await self._refresh(consumer, admin)
                if not self._assigned:
                    await self._wait_for_change(next_refresh - time.monotonic())
                    continue
                try:
                    fetched = await consumer.fetch(
                        self._assigned, FETCH_WAIT_S, RESTORE_FETCH_RECORDS
                    )
                except Exception as exc:  # noqa: BLE001 - a copy behind costs restore time only
                    log.warning(
                        "standbys: reading the changelogs failed (%s: %s); trying again in %.0fs",
                        type(exc).__name__,
                        exc,
                        REFRESH_S,
                    )
                    self._assigned = []  # followed again from each copy's place
                    await self._wait_for_change(REFRESH_S)
                    continue
                self._apply(consumer, fetched)
                await asyncio.sleep(0)  # a client with records buffered answers without yielding
        except Exception as exc:
            log.error(
                "standbys stopped: %s: %s; processing goes on, but a failover to this replica "
                "restores whole stores",
                type(exc).__name__,
                exc,
            )
            raise
        finally:
            self._close_all()
            await consumer.stop()
            await admin.stop()

    async def _wait_for_change(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), max(0.0, timeout_s))

    async def _refresh(self, consumer: Consumer, admin: Admin) -> None:
        try:
            description = await admin.describe_group(self.parts.group)
        except Exception as exc:  # noqa: BLE001 - the copies stay as they are until the next try
            if not self._describe_failed:
                log.warning(
                    "standbys: describing the group failed (%s: %s); the warm copies stay as "
                    "they are and the group is asked again in %.0fs",
                    type(exc).__name__,
                    exc,
                    REFRESH_S,
                )
            self._describe_failed = True
            return
        self._describe_failed = False
        placed = standby_partitions(
            description.members, self.me, self.source_topic, self.copies
        ) - frozenset(self._in_use)
        for partition in sorted(set(self.held) - placed):
            self.held.pop(partition).close()
        for partition in sorted(placed - set(self.held)):
            try:
                self.held[partition] = PartitionState(
                    self.stores,
                    self.parts.group,
                    self.parts.directory,
                    partition,
                    self.parts.bounds,
                )
            except Exception as exc:  # noqa: BLE001 - a missing copy costs restore time only
                log.warning(
                    "standbys: cannot open the copy of partition %d under %s (%s: %s); "
                    "trying again in %.0fs",
                    partition,
                    self.parts.directory,
                    type(exc).__name__,
                    exc,
                    REFRESH_S,
                )
        if {tp.partition for tp in self._assigned} != set(self.held):
            log.info("standbys: keeping warm copies of partition(s) %s", sorted(self.held))
            await self._follow(consumer)

    async def _follow(self, consumer: Consumer) -> None:
        """Read each copy's changelogs from where the copy is."""
        wanted = [
            TopicPartition(topic, partition)
            for partition, state in self.held.items()
            for topic in state.changelogs.values()
        ]
        self._assigned = []
        consumer.assign(wanted)
        if not wanted:
            return
        ends = await log_ends(self.parts, consumer, wanted)
        beginnings = await consumer.beginning_offsets(wanted)
        following = []
        for tp in wanted:
            found = self._copy_of(tp)
            if found is None:  # its worker took it during the awaits
                continue
            local = found[1]
            if local.position > ends[tp]:
                log.warning(
                    "standbys: %s is at changelog offset %d but %s-%d ends at %d (the topic "
                    "was made again?); wiping it",
                    local.what,
                    local.position,
                    tp.topic,
                    tp.partition,
                    ends[tp],
                )
                local.wipe()
            consumer.seek(tp, max(local.position, beginnings[tp]))
            following.append(tp)
        self._assigned = following

    def _copy_of(self, tp: TopicPartition) -> tuple[str, LocalStore] | None:
        """The store a changelog partition feeds, and its copy; None: not held (any more)."""
        state = self.held.get(tp.partition)
        if state is None:
            return None
        for store, topic in state.changelogs.items():
            if topic == tp.topic:
                return store, state.local[store]
        return None

    def _apply(
        self, consumer: Consumer, fetched: Mapping[TopicPartition, Sequence[Record]]
    ) -> None:
        for tp, records in fetched.items():
            found = self._copy_of(tp)
            if found is None:
                continue
            store, local = found
            changes, last = changes_in(records)
            position = max(last + 1, consumer.known_position(tp) or 0)
            if changes or position > local.position:
                local.write(changes, position)
            if changes:
                self.metrics.inc(STANDBY_RECORDS, len(changes), labels={"store": store})

    def _close_all(self) -> None:
        for state in self.held.values():
            state.close()
        self.held.clear()
