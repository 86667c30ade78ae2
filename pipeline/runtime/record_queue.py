"""A partition's queue of fetched records, taken in batches.

Records arrive as lists (one per fetch) and leave as batches; moving them
one by one cost a few percent of a worker's time. Lists are kept as they
came and batches are sliced out of them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class RecordQueue(Generic[T]):
    def __init__(self) -> None:
        self._chunks: deque[Sequence[T]] = deque()
        self._head = 0  # records of the first chunk already taken
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def extend(self, records: Sequence[T]) -> None:
        if records:
            self._chunks.append(records)
            self._size += len(records)

    def take(self, count: int) -> list[T]:
        """Up to `count` records, oldest first."""
        taken: list[T] = []
        while count > 0 and self._chunks:
            chunk = self._chunks[0]
            available = len(chunk) - self._head
            if available <= count:
                taken.extend(chunk[self._head :] if self._head else chunk)
                self._chunks.popleft()
                self._head = 0
                count -= available
                self._size -= available
            else:
                taken.extend(chunk[self._head : self._head + count])
                self._head += count
                self._size -= count
                count = 0
        return taken

    def peek(self) -> T:
        """The oldest record, left in the queue; only on a non-empty queue."""
        return self._chunks[0][self._head]

    def take_while(self, count: int, keep: Callable[[T], bool]) -> list[T]:
        """Up to `count` records, oldest first, stopping at the first that `keep` refuses."""
        taken: list[T] = []
        while len(taken) < count and self._size and keep(self.peek()):
            taken.extend(self.take(1))
        return taken

    def clear(self) -> None:
        self._chunks.clear()
        self._head = 0
        self._size = 0
