"""A partition's intake: each fetched record taken once, however often the fetch returns it.

A seek or an offset reset can move the fetch position back over records
already queued (a replay's seek to its range start raced the first fetch
this way), and a client can hand the same records over twice in one fetch.
They are in hand already, so handling them again would only duplicate
their outputs: they are dropped here, with a warning that says how many.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pipeline.kafka.port import Record, TopicPartition
from pipeline.wire.codec import payload_size

log = logging.getLogger("pipeline.worker")


class Intake:
    def __init__(self, tp: TopicPartition) -> None:
        self.tp = tp
        self.next_offset = -1
        """Offset after the last record taken: anything below it is in hand already."""

    def fresh(self, records: Sequence[Record]) -> Sequence[Record]:
        """The records not taken before, in offset order; they count as taken now."""
        if records and (records[0].offset < self.next_offset or _repeats(records)):
            records = self._drop_taken(records)
        if records:
            self.next_offset = records[-1].offset + 1
        return records

    def _drop_taken(self, records: Sequence[Record]) -> list[Record]:
        fresh: list[Record] = []
        next_offset = self.next_offset
        for record in records:
            if record.offset >= next_offset:
                fresh.append(record)
                next_offset = record.offset + 1
        log.warning(
            "%s-%d: the fetch returned offsets %d..%d, but records up to %d are taken "
            "already (the position moved back); dropping %d record(s) already in hand",
            self.tp.topic,
            self.tp.partition,
            records[0].offset,
            max(record.offset for record in records),
            self.next_offset - 1,
            len(records) - len(fresh),
        )
        return fresh


def mean_record_bytes(records: Sequence[Record]) -> float:
    """Sized per fetch, not per record: a queue's byte bound needs bytes, not precision."""
    return sum(payload_size(record) for record in records) / len(records)


def _repeats(records: Sequence[Record]) -> bool:
    """Whether a fetch's offsets fail to rise somewhere, checked record by record: the span
    of the offsets cannot tell, since a compaction or transaction gap widens it as much as
    a repeat narrows it (docs/design-notes.md#intake)."""
    previous = -1
    for record in records:
        offset = record.offset
        if offset <= previous:
            return True
        previous = offset
    return False
