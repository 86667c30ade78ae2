"""A partition's stores while its batches run: changes staged per batch, applied once acknowledged.

A handled batch's changes are not written to RocksDB at once: they go to
the changelog with the batch's outputs, and only once the broker has
acknowledged them (with exactly-once, once the transaction committed) are
they written locally, with the changelog offset they reflect. Meanwhile the
next batches already run, and must see them: a read looks at the batch
being handled, then at the batches in flight (newest first), then at
RocksDB. A batch that never gets its acknowledgement is dropped with the
worker, and the local copy stays exactly what the changelog acknowledged.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.stores.local_store import LocalStore
from pipeline.stores.rocks import RocksBounds
from pipeline.stores.store_spec import Store

Changes = dict[str, dict[bytes, bytes | None]]
"""Store name → key → new value (None: deleted)."""


@dataclass(eq=False)
class BatchChanges:
    """One batch's changes, per store, in the order they go to the changelog."""

    changes: Changes
    acks: dict[str, asyncio.Future[Any]] = field(default_factory=dict)
    """Per store, the acknowledgement of its changelog records (a DeliveryList)."""


class PartitionState:
    def __init__(
        self,
        stores: tuple[Store[Any], ...],
        group: str,
        directory: Path,
        partition: int,
        bounds: RocksBounds,
    ) -> None:
        self.partition = partition
        self.declared = {store.name: store for store in stores}
        self.changelogs = {store.name: store.changelog(group) for store in stores}
        """Store name → its changelog topic (this partition's changes go to the same number)."""
        self.local: dict[str, LocalStore] = {}
        try:
            for store in stores:
                self.local[store.name] = LocalStore(
                    directory / store.name / str(partition),
                    f"store {store.name!r} partition {partition}",
                    bounds,
                )
        except BaseException:
            self.close()
            raise
        self.batch: Changes = {name: {} for name in self.declared}
        self.in_flight: deque[BatchChanges] = deque()
        self.hints: dict[str, int] = {}
        """Per window store, a lower bound of its open windows' ends (pipeline.stores.window_view);
        cleared when an attempt's writes are dropped, since they may have moved it."""

    def read(self, store: str, key: bytes) -> bytes | None:
        """The newest value: the batch in hand, the batches in flight, then the local copy."""
        changes = self.batch[store]
        if key in changes:
            return changes[key]
        for batch in reversed(self.in_flight):
            changes = batch.changes[store]
            if key in changes:
                return changes[key]
        return self.local[store].get(key)

    def scan(
        self, store: str, start: bytes, stop: bytes, staged: dict[bytes, bytes | None]
    ) -> list[tuple[bytes, bytes]]:
        """Keys in [start, stop) in order with their newest values: the local copy, then the
        batches in flight, the batch in hand and `staged` (the record's own writes)."""
        merged: dict[bytes, bytes | None] = dict(self.local[store].scan(start, stop))
        layers = [batch.changes[store] for batch in self.in_flight]
        for changes in (*layers, self.batch[store], staged):
            merged.update((k, v) for k, v in changes.items() if start <= k < stop)
        return sorted((k, v) for k, v in merged.items() if v is not None)

    def merge(self, staged: Changes) -> None:
        """A record succeeded: its staged changes join its batch's."""
        for store, changes in staged.items():
            if changes:
                self.batch[store].update(changes)

    def end_batch(self) -> BatchChanges | None:
        """The handled batch's changes, now in flight; None when it changed nothing."""
        if not any(self.batch.values()):
            return None
        ended = BatchChanges(self.batch)
        self.in_flight.append(ended)
        self.batch = {name: {} for name in self.declared}
        return ended

    def acknowledged(self, ended: BatchChanges) -> None:
        """The broker has its changelog records: write them locally, with their offsets."""
        self.in_flight.remove(ended)
        for store, changes in ended.changes.items():
            if changes:
                deliveries = ended.acks[store].result()
                self.local[store].write(changes, deliveries[-1].offset + 1)

    def drop_unacknowledged(self) -> None:
        """The worker stopped with batches unacknowledged: the next owner redoes them."""
        self.in_flight.clear()
        self.batch = {name: {} for name in self.declared}

    def close(self) -> None:
        for local in self.local.values():
            local.close()
        self.local.clear()
