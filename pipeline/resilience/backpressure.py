"""A byte budget that makes publishers wait instead of buffering without bound.

Input can be faster than the broker for a while (a bulk file, a burst at the
gateway). Every byte handed to the client is taken from this budget and
given back when the broker acknowledges it, so memory is bounded by
configuration and the fast side slows to the broker's pace. Waiters are
served first come, first served, so a large request is not starved by a
stream of small ones.
"""

from __future__ import annotations

import asyncio
from collections import deque


class ByteBudget:
    def __init__(self, limit_bytes: int) -> None:
        if limit_bytes <= 0:
            raise ValueError("limit_bytes must be positive")
        self.limit_bytes = limit_bytes
        self.in_use = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    def _fits(self, size: int) -> bool:
        # One oversized request alone is let through, or it would wait forever.
        return self.in_use == 0 or self.in_use + size <= self.limit_bytes

    async def acquire(self, size: int) -> None:
        if not self._waiters and self._fits(size):
            self.in_use += size
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((size, granted))
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release(size)  # granted just as the caller gave up
            raise

    def would_fit(self, size: int) -> bool:
        """Whether acquire(size) would return at once (nobody waits, and it fits)."""
        return not self._waiters and self._fits(size)

    def try_acquire(self, size: int) -> bool:
        if self._waiters or not self._fits(size):
            return False
        self.in_use += size
        return True

    def release(self, size: int) -> None:
        self.in_use = max(0, self.in_use - size)
        while self._waiters:
            wanted, granted = self._waiters[0]
            if granted.cancelled():
                self._waiters.popleft()
                continue
            if not self._fits(wanted):
                break
            self._waiters.popleft()
            self.in_use += wanted
            granted.set_result(None)
