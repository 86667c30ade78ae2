"""Quarantine: a record that has killed or stalled its owner K times is not run again.

A record whose handler blocks the event loop (a CPU loop, a backtracking
regex, `time.sleep`, a C call) or crashes the interpreter takes its
replica out of the group; the partition moves to another replica, which
reads the same record and goes the same way. No one replica lives to see
the pattern, so what is in hand is written where every next owner reads
it: the metadata of the group's committed offset, which Kafka keeps per
group and partition (`pipeline.hands=F-L`, with `;strikes=N@R` for one
record in hand).

- **A running owner says how far its hands reach.** Before a handler gets
  a record past what the partition's mark covers, the owner commits a mark
  covering the batch and CLAIM_AHEAD records more (`hands=F-L`); every
  commit while it runs carries the mark. Handlers on one partition run one
  batch after another, so only records from F on can be in a handler when
  the owner dies. A clean hand-over (revoke or shutdown with nothing in
  hand) commits without it; a mark wholly before the committed offset is
  stale and reads as none.
- **The next owner goes one record at a time over the range in hand.**
  Records between the commit and F were handled already and go in batches;
  from F to L one at a time, and in this replica only one partition's such
  records at a time. Each is marked with its own count before its handler
  runs (`strikes=N@R`: N owners, this one counted, ended with R in hand).
  A death then strikes the record in hand, never the committed offset, and
  the records waiting their turn are not in hand and gain nothing.
- A mark's commit refused (a rebalance) is retried before the records it
  names run (pipeline.runtime.careful_pass); an owner the broker stops
  with a record in hand takes its own strike back as it releases the mark.
- The owner that finds a count of K (`Processor.quarantine_after`, 3) on
  the record it is about to run dead-letters it as `Quarantined` without
  running it, and goes on.

So a poison anywhere in the range in hand costs at most K + 1 deaths: one
in batches, which only says where to look, then K on the record itself.
What a death makes the next owner redo is bounded by what was in hand: the
records after the commit, up to L. `quarantine_after=None` turns it off.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.errors import PipelineError
from pipeline.kafka.port import Committed, Record
from pipeline.metric_names import DEAD_LETTERED
from pipeline.runtime.batch_result import BatchResult
from pipeline.runtime.dead_letters import now_ms

if TYPE_CHECKING:
    from pipeline.runtime.host import HandlingParts

log = logging.getLogger("pipeline.worker")

MARK = "pipeline.hands="
LEGACY_MARK = "pipeline.in-flight="
"""Marks of earlier versions: N strikes on the committed offset, reaching LEGACY_SPAN records."""
LEGACY_SPAN = 50
CLAIM_AHEAD = 200
"""Records a claim covers past the batch that made it: one claim commit for many small
batches at low rates, at the price of that many more careful records after a death."""


@dataclass(frozen=True)
class Hands:
    """What an owner may have in a handler, as the metadata of its commit says."""

    first: int
    last: int
    """Offsets first..last (inclusive): only these can have been in a handler at a death."""
    strikes: int = 0
    at: int | None = None
    """The one record in hand when going carefully; `strikes` owners (the writer counted)
    ended with it in hand."""

    def encode(self) -> str:
        text = f"{MARK}{self.first}-{self.last}"
        return text if self.at is None else f"{text};strikes={self.strikes}@{self.at}"

    def covers(self, offset: int) -> bool:
        return self.first <= offset <= self.last

    def strikes_on(self, offset: int) -> int:
        return self.strikes if offset == self.at else 0


def read_hands(committed: Committed | None) -> Hands | None:
    """The mark in a commit's metadata; None: none, stale, or another tool's metadata."""
    if committed is None:
        return None
    hands = _parse(committed.metadata, committed.offset)
    if hands is None or hands.last < committed.offset:
        return None
    return hands


def _parse(metadata: str, offset: int) -> Hands | None:
    try:
        if metadata.startswith(LEGACY_MARK):
            strikes = max(0, int(metadata[len(LEGACY_MARK) :]))
            return Hands(offset, offset + LEGACY_SPAN - 1, strikes, offset)
        if not metadata.startswith(MARK):
            return None
        span, _, struck = metadata[len(MARK) :].partition(";strikes=")
        first, _, last = span.partition("-")
        if not struck:
            return Hands(int(first), int(last))
        count, _, at = struck.partition("@")
        return Hands(int(first), int(last), max(0, int(count)), int(at))
    except ValueError:
        return None


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
    """A partition whose last owner died with records in hand: those go one at a time."""

    hands: Hands
    """The dead owner's mark: what it may have had in a handler, and any record's strikes."""
    limit: int
    """Strikes at which the record is quarantined (Processor.quarantine_after)."""
    one_at_a_time: asyncio.Lock
    """Held by the replica's one partition going carefully."""

    def careful_at(self, offset: int) -> bool:
        return self.hands.covers(offset)

    def before(self, offset: int) -> bool:
        """Handled already by the dead owner (no handler had it at the death): batches."""
        return offset < self.hands.first


def quarantined(parts: HandlingParts, record: Record, strikes: int) -> BatchResult:
    """The record's dead letter, the handler not run: it was in hand at `strikes` ends."""
    result = BatchResult(limits=parts.record_path.limits)
    error = Quarantined(record.topic, record.partition, record.offset, strikes)
    result.dead_letters.append(parts.record_path.dead_letter(record, error, strikes, now_ms()))
    parts.metrics.inc(DEAD_LETTERED, labels={"error": "Quarantined"})
    log.error("%s (dead-lettered to %s as Quarantined)", error, parts.processor.source.dlq_name)
    return result
