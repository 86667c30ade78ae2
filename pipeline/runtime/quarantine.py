"""Quarantine: a record that has killed or stalled its owner K times is not run again.

A record whose handler blocks the event loop (a CPU loop, `time.sleep`, a
C call) or crashes the interpreter takes its replica out of the group; the
partition moves to another replica, which reads the same record and goes
the same way. No one replica lives to see the pattern, so the count is
kept where every next owner reads it: the metadata of the group's
committed offset, which Kafka keeps per group and partition.

- Every commit a running worker makes carries `pipeline.in-flight=1`: "an
  owner is working from this offset". Before a partition's first batch the
  owner commits that mark if its commits do not carry it yet. A clean
  hand-over (revoke or shutdown with nothing in hand) commits without it.
  So a committed offset that still carries the mark was left by an owner
  that died or was dropped with records from there in hand.
- A new owner that finds the mark (k) on its start goes carefully for the
  next CAREFUL_SPAN records: one record at a time, and in this replica only
  one such record at a time across all its partitions. Each is committed
  with its count plus one before its handler runs and committed past,
  unmarked, once its outputs are acknowledged. A death then points at the
  one record in hand: when a blocking record stops the loop, the others are
  waiting their turn, not in hand, and their counts do not move.
- The owner that finds a count of K (`Processor.quarantine_after`, 3) on
  the record it is about to run dead-letters it as `Quarantined` without
  running it, and goes on.

A first death in ordinary batches is counted on the committed offset, not
on the record that caused it; the careful pass finds the record, so a
poison costs at most K + 1 deaths, and a record that happened to be in a
batch at a death gets one careful pass, never a quarantine of its own.
`quarantine_after=None` turns all of this off.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from pipeline.errors import PipelineError
from pipeline.kafka.port import Committed

IN_FLIGHT = "pipeline.in-flight="
CAREFUL_SPAN = 50
"""Records taken one at a time after a mark. A dead owner's records in hand lie within
its last batches past the commit; a poison beyond this span is met by the next normal
batch and marked again further on, so a smaller span costs deaths, a larger one time."""


def in_flight(strikes: int) -> str:
    """The commit metadata that says `strikes` owners ended with this offset in hand."""
    return f"{IN_FLIGHT}{strikes}"


def strikes_of(committed: Committed | None, start: int) -> int:
    """The strikes a commit records against `start` (0: none, or another tool's metadata)."""
    if committed is None or committed.offset != start:
        return 0
    metadata = committed.metadata
    if not metadata.startswith(IN_FLIGHT):
        return 0
    try:
        return max(0, int(metadata[len(IN_FLIGHT) :]))
    except ValueError:
        return 0


class Quarantined(PipelineError):
    """The dead-letter reason of a record that was in hand at K deaths or stalls of its owner."""

    def __init__(self, topic: str, partition: int, offset: int, strikes: int) -> None:
        self.strikes = strikes
        super().__init__(
            f"{topic}-{partition}@{offset} was in hand when its owner died or was dropped from "
            f"the group {strikes} times in a row (a handler that blocks the event loop or "
            "crashes the process?); it was not run again. Fix the handler, then "
            "`pipeline dlq redrive` it"
        )


@dataclass
class Suspicion:
    """A partition whose last owner left a mark: handled one record at a time for a while."""

    start: int
    """The committed offset the mark was found on."""
    strikes: int
    """Owners that ended with the record at `start` in hand (this one not counted)."""
    limit: int
    """Strikes at which the record is quarantined (Processor.quarantine_after)."""
    careful_until: int
    """Records before this offset are taken one at a time, each marked first."""
    one_at_a_time: asyncio.Lock
    """Held by the replica's one suspect record in hand."""

    def strikes_at(self, offset: int) -> int:
        return self.strikes if offset == self.start else 0

    def careful_at(self, offset: int) -> bool:
        return offset < self.careful_until
