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


class OffsetTracker:
    def __init__(self, start_offset: int | None = None) -> None:
        """`start_offset` None: learnt from the first record (the consumer's position)."""
        # Each pending batch: [first offset, offset after its last record, finished?]
        self._pending: deque[list[int]] = deque()
        self._in_progress = 0
        self._committable = start_offset if start_offset is not None else -1
        self.committed = self._committable

    def started(self, first: int, last: int, count: int) -> list[int]:
        """Register a batch of `count` records, offsets first..last; returns its token."""
        if self._committable < 0:
            self._committable = self.committed = first
        previous_end = self._pending[-1][1] if self._pending else self._committable
        if first < previous_end or last < first:
            raise ValueError(f"batch {first}..{last} does not follow offset {previous_end - 1}")
        batch = [first, last + 1, 0, count]
        self._pending.append(batch)
        self._in_progress += count
        return batch

    def finished(self, batch: list[int]) -> None:
        batch[2] = 1
        pending = self._pending
        while pending and pending[0][2]:
            head = pending.popleft()
            self._in_progress -= head[3]
            self._committable = head[1]

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
