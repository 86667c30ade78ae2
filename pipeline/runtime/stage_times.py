"""Where a record's time goes, stage by stage: always on, one record in 16.

A record's way through a worker, each stage ending where the next begins:

- `fetched`: from the record's timestamp (its producer's create time, or
  the broker's append time on a LogAppendTime topic) to the fetch that
  handed it to its partition's worker: the producer's linger, the broker's
  append and the consumer's fetch wait, which the record alone cannot tell
  apart;
- `queued`: waiting in the partition's queue until its batch's handler call
  started;
- `handled`: until its batch was handled (its outputs wait for the batch);
- `acknowledged`: until the broker acknowledged the batch's outputs, dead
  letters and changelog records (exactly-once: its transaction committed);
- `committed`: until its offset was committed to the group (exactly-once:
  0, the transaction committed it).

So the stages add up to `end_to_end`, the record's timestamp to its commit,
to the clock's resolution: each is one observation of
`pipeline_record_stage_seconds{stage}`. One record in SAMPLE_EVERY is timed
(those at offsets that are multiples of it, where offsets have no gaps):
the histograms see every kind of batch and position in it, at a sixteenth
of the cost. Wall-clock time, since the
record's timestamp is; a producer on another host with a skewed clock
shifts `fetched` (and `end_to_end`) by the skew. A record without a
timestamp (-1: a producer that set none, on an old message format) has no
start: its `fetched` and `end_to_end` are not observed (they would read as
56 years), its other stages are.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.kafka.port import Record
from pipeline.metric_names import RECORD_STAGE_SECONDS
from pipeline.metrics import Metrics

SAMPLE_EVERY = 16
STAGES = ("fetched", "queued", "handled", "acknowledged", "committed")
END_TO_END = "end_to_end"
STAGE_BUCKETS_S = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

Observe = Callable[[str, float], None]
"""(stage, seconds): one record's time in one stage."""


def metrics_observer(metrics: Metrics) -> Observe:
    """Observations into `pipeline_record_stage_seconds{stage}`."""
    labels = {stage: {"stage": stage} for stage in (*STAGES, END_TO_END)}

    def observe(stage: str, seconds: float) -> None:
        metrics.observe(RECORD_STAGE_SECONDS, seconds, labels[stage], STAGE_BUCKETS_S)

    return observe


@dataclass(slots=True)
class Timed:
    """One sampled record's moments, in seconds since the epoch."""

    offset: int
    published: float | None
    """None: the record carried no timestamp."""
    fetched: float
    started: float = 0.0
    handled: float = 0.0
    acknowledged: float = 0.0


class StageClock:
    """One partition's sampled records, from the fetch to the commit (in offset order)."""

    def __init__(
        self,
        observe: Observe,
        clock: Callable[[], float] = time.time,
        every: int = SAMPLE_EVERY,
    ) -> None:
        self._observe = observe
        self._clock = clock
        self._every = every
        self._queued: deque[Timed] = deque()
        self._uncommitted: deque[tuple[int, list[Timed]]] = deque()
        """(the batch's end offset, its timed records), acknowledged, awaiting the commit."""

    def fetched(self, records: Sequence[Record]) -> None:
        """Records handed to the partition's worker (in offset order)."""
        if not records:
            return
        every = self._every
        # Every 16th from the first offset that is a multiple of 16: a slice, not a test per
        # record (offsets with gaps, as after compaction, shift it; still one in 16).
        timed = records[(-records[0].offset) % every :: every]
        if timed:
            now = self._clock()
            self._queued.extend(
                Timed(r.offset, r.timestamp / 1000 if r.timestamp >= 0 else None, now)
                for r in timed
            )

    def started(self, last_offset: int) -> list[Timed]:
        """A batch ending at `last_offset` goes into its handler: its timed records."""
        batch: list[Timed] = []
        queued = self._queued
        if queued and queued[0].offset <= last_offset:
            now = self._clock()
            while queued and queued[0].offset <= last_offset:
                timed = queued.popleft()
                timed.started = now
                batch.append(timed)
        return batch

    def skip_through(self, offset: int) -> None:
        """Records handled another way (one at a time, or not at all): not timed."""
        while self._queued and self._queued[0].offset <= offset:
            self._queued.popleft()

    def handled(self, batch: list[Timed]) -> None:
        if batch:
            now = self._clock()
            for timed in batch:
                timed.handled = now

    def on_acknowledged(
        self, acks: asyncio.Future[Any], batch: list[Timed], end_offset: int, committed: bool
    ) -> None:
        """Time the batch's acknowledgement when `acks` succeeds (a failure drops it)."""
        if batch:
            acks.add_done_callback(
                lambda done: (
                    None
                    if done.cancelled() or done.exception() is not None
                    else self.acknowledged(batch, end_offset, committed)
                )
            )

    def acknowledged(self, batch: list[Timed], end_offset: int, committed: bool) -> None:
        """The broker has the batch's results; `committed`: in a transaction with its offsets."""
        if not batch:
            return
        now = self._clock()
        for timed in batch:
            timed.acknowledged = now
        if committed:
            self._finish(batch, now)
        else:
            self._uncommitted.append((end_offset, batch))

    def committed(self, offset: int) -> None:
        """The group's commit reached `offset` (the next to read)."""
        waiting = self._uncommitted
        if waiting and waiting[0][0] <= offset:
            now = self._clock()
            while waiting and waiting[0][0] <= offset:
                self._finish(waiting.popleft()[1], now)

    def _finish(self, batch: list[Timed], committed: float) -> None:
        observe = self._observe
        for t in batch:
            if t.published is not None:
                observe("fetched", t.fetched - t.published)
            observe("queued", t.started - t.fetched)
            observe("handled", t.handled - t.started)
            observe("acknowledged", t.acknowledged - t.handled)
            observe("committed", committed - t.acknowledged)
            if t.published is not None:
                observe(END_TO_END, committed - t.published)
