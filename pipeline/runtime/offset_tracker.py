"""Which offset of a partition may be committed: the low-water mark of finished work.

Work is taken and finished in batches (a batch finishes when its outputs
are acknowledged), and batches can finish out of order. The committable
offset is the end of the longest run of finished batches from the start,
so nothing after a batch still in progress is ever committed and a crash
re-delivers it rather than losing it. Book-keeping is per batch, not per
record: it runs on every batch of the hot path.
"""

from __future__ import annotations

from collections import deque


class PendingBatch:
    """A batch taken from a partition and not yet counted as finished in order.

    What a partition worker holds while the batch is handled and published,
    and hands back when its outputs are acknowledged. Slotted: one is made
    for every batch of the hot path.
    """

    __slots__ = ("count", "end", "finished", "first")

    def __init__(self, first: int, end: int, count: int) -> None:
        self.first = first
        self.end = end
        """The offset after its last record: what a commit names once it is finished."""
        self.count = count
        self.finished = False


class OffsetTracker:
    def __init__(self, start_offset: int | None = None) -> None:
        """`start_offset` None: learnt from the first record (the consumer's position)."""
        self._pending: deque[PendingBatch] = deque()
        self._in_progress = 0
        self._committable = start_offset if start_offset is not None else -1
        self.committed = self._committable

    def started(self, first: int, last: int, count: int) -> PendingBatch:
        """Register a batch of `count` records, offsets first..last."""
        if self._committable < 0:
            self._committable = self.committed = first
        previous_end = self._pending[-1].end if self._pending else self._committable
        if first < previous_end or last < first:
            raise ValueError(f"batch {first}..{last} does not follow offset {previous_end - 1}")
        batch = PendingBatch(first, last + 1, count)
        self._pending.append(batch)
        self._in_progress += count
        return batch

    def finished(self, batch: PendingBatch) -> None:
        batch.finished = True
        pending = self._pending
        while pending and pending[0].finished:
            head = pending.popleft()
            self._in_progress -= head.count
            self._committable = head.end

    @property
    def committable(self) -> int:
        """Offset to commit: every record before it is finished (-1: nothing seen yet)."""
        return self._committable

    @property
    def in_progress(self) -> int:
        """Records taken and not yet counted as finished in order."""
        return self._in_progress

    @property
    def uncommitted(self) -> int:
        """Records taken since the last commit (finished or not): what a crash would redo."""
        return self._in_progress + max(0, self._committable - self.committed)

    def skip_to(self, offset: int) -> None:
        """Count every offset before `offset` as finished: the fetch passed them without records.

        Only for a partition with nothing in progress; what was taken must
        finish first.
        """
        if self._pending:
            raise ValueError(f"cannot skip to offset {offset} with batches in progress")
        self._committable = max(self._committable, offset)

    def mark_committed(self, offset: int) -> None:
        self.committed = max(self.committed, offset)
