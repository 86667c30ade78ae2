"""A partition's log in memory: records, transaction markers, and what each reader may see."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.kafka.port import Headers

BROKER_DEFAULTS = {
    "cleanup.policy": "delete",
    "retention.ms": "604800000",
    "min.insync.replicas": "1",
    "max.message.bytes": "1048588",
    "segment.ms": "604800000",
    "message.timestamp.type": "CreateTime",
}


@dataclass(slots=True)
class MemoryRecord:
    """A stored record as a consumer receives it (the port's Record)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Headers


@dataclass(slots=True)
class Entry:
    """One offset of the log: a record, or a transaction's commit or abort marker."""

    record: MemoryRecord | None
    transaction: int | None = None
    """The producing transaction's id, while it is open, committed or aborted."""
    marker: bool = False


@dataclass
class Transaction:
    id: int
    owner: str | None = None
    """The transactional id of the producer that began it."""
    state: str = "open"  # open, committed, aborted
    partitions: set[tuple[str, int]] = field(default_factory=set)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    group: str | None = None


@dataclass
class PartitionLog:
    topic: str
    partition: int
    entries: list[Entry] = field(default_factory=list)
    log_start: int = 0
    """Records before it were deleted (retention, DeleteRecords); reads there are out of range."""

    @property
    def high_watermark(self) -> int:
        return len(self.entries)

    def stable_offset(self, transactions: dict[int, Transaction]) -> int:
        """The last stable offset: the first offset of a transaction still open, else the end."""
        for offset, entry in enumerate(self.entries):
            if entry.marker or entry.transaction is None:
                continue
            if transactions[entry.transaction].state == "open":
                return offset
        return self.high_watermark

    def read(
        self,
        position: int,
        limit: int,
        read_committed: bool,
        transactions: dict[int, Transaction],
    ) -> tuple[list[MemoryRecord], int]:
        """Records from `position` (at most `limit`) a reader may see, and the next position.

        Markers and, for read_committed readers, aborted records take an
        offset and are passed over; a read_committed reader stops at the
        first record of a transaction that is still open.
        """
        end = self.stable_offset(transactions) if read_committed else self.high_watermark
        found: list[MemoryRecord] = []
        offset = position
        while offset < end and len(found) < limit:
            entry = self.entries[offset]
            offset += 1
            if entry.marker or entry.record is None:
                continue
            if (
                read_committed
                and entry.transaction is not None
                and transactions[entry.transaction].state == "aborted"
            ):
                continue
            found.append(entry.record)
        return found, offset

    def offset_for_time(self, millis: int) -> int | None:
        for offset, entry in enumerate(self.entries):
            if offset < self.log_start:
                continue
            if entry.record is not None and entry.record.timestamp >= millis:
                return offset
        return None


@dataclass
class TopicLog:
    name: str
    partitions: list[PartitionLog]
    configs: dict[str, str] = field(default_factory=dict)

    def config(self, name: str) -> str:
        return self.configs.get(name, BROKER_DEFAULTS.get(name, ""))

    def all_configs(self) -> dict[str, str]:
        return {**BROKER_DEFAULTS, **self.configs}
