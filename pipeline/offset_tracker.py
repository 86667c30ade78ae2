"""Which offset of a partition may be committed: the low-water mark of finished work.

Records finish out of order (lanes, retries), but a commit says "everything
before this offset is done". The committable offset is therefore the first
offset not yet finished; nothing after a record still in progress is ever
committed, so a crash re-delivers it rather than losing it.
"""

from __future__ import annotations

from collections import deque


class OffsetTracker:
    def __init__(self, start_offset: int | None = None) -> None:
        """`start_offset` None: learnt from the first record (the consumer's position)."""
        self._pending: deque[int] = deque()
        self._finished: set[int] = set()
        self._committable = start_offset if start_offset is not None else -1
        self.committed = self._committable

    def started(self, offset: int) -> None:
        """Register a record taken for processing (offsets must increase)."""
        if self._committable < 0:
            self._committable = self.committed = offset
        if self._pending and offset <= self._pending[-1]:
            raise ValueError(f"offset {offset} registered after {self._pending[-1]}")
        if not self._pending and offset < self._committable:
            raise ValueError(
                f"offset {offset} is before the committable offset {self._committable}"
            )
        self._pending.append(offset)

    def finished(self, offset: int) -> None:
        self._finished.add(offset)
        pending, done = self._pending, self._finished
        while pending and pending[0] in done:
            head = pending.popleft()
            done.discard(head)
            self._committable = head + 1

    @property
    def committable(self) -> int:
        """Offset to commit: every record before it is finished (-1: nothing seen yet)."""
        return self._committable

    @property
    def in_progress(self) -> int:
        return len(self._pending)

    @property
    def uncommitted(self) -> int:
        """Records taken since the last commit (finished or not): what a crash would redo."""
        return self.in_progress + max(0, self._committable - self.committed)

    def mark_committed(self, offset: int) -> None:
        self.committed = max(self.committed, offset)
