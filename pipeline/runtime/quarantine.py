"""Quarantine: a record that has killed or stalled its owner K times is not run again.

A record whose handler blocks the event loop (a CPU loop, `time.sleep`, a
C call) or crashes the interpreter takes its replica out of the group; the
partition moves to another replica, which reads the same record and goes
the same way. No one replica lives to see the pattern, so the count is
kept where every next owner reads it: the metadata of the group's
committed offset, which Kafka keeps per group and partition.

- Every commit a running worker makes carries `pipeline.in-flight=1`:
  "an owner is working from this offset". A clean hand-over (revoke or
  shutdown with nothing left in hand) commits again with no metadata.
  So a committed offset that still carries the mark was left by an owner
  that died or was dropped with records from there in hand.
- On assignment the new owner reads the mark (k) and commits the offset
  again with k + 1 before it handles anything: its own claim.
- With k >= 1 it goes carefully for one batch's worth of records: one
  record at a time, each claimed (its offset committed with the mark)
  before the handler runs, so a death points at exactly that record.
- The owner that reads k >= K (`Processor.quarantine_after`, default 3) on
  the record at its committed offset dead-letters it with `Quarantined`
  without running it, and goes on.

A count of K needs K owners to have had the record itself in hand at
their end; the first death may be counted at the start of its batch, so
a poison found mid-batch costs K + 1 deaths. `quarantine_after=None`
turns all of this off (no marks, no claims).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import PipelineError
from pipeline.kafka.port import Committed

IN_FLIGHT = "pipeline.in-flight="


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
    """Records before this offset are taken one at a time, each claimed first."""

    def strikes_at(self, offset: int) -> int:
        return self.strikes if offset == self.start else 0

    def careful_at(self, offset: int) -> bool:
        return offset < self.careful_until
