"""A byte budget that makes publishers wait instead of buffering without bound.

Input can be faster than the broker for a while (a bulk file, a burst at the
gateway). Every byte handed to the client is taken from this budget and
given back when the broker acknowledges it, so memory is bounded by
configuration and the fast side slows to the broker's pace.
"""

from __future__ import annotations

import asyncio


class ByteBudget:
    def __init__(self, limit_bytes: int) -> None:
        if limit_bytes <= 0:
            raise ValueError("limit_bytes must be positive")
        self.limit_bytes = limit_bytes
        self.in_use = 0
        self._changed = asyncio.Condition()

    def _fits(self, size: int) -> bool:
        # One oversized request alone is let through, or it would wait forever.
        return self.in_use == 0 or self.in_use + size <= self.limit_bytes

    async def acquire(self, size: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._fits(size))
            self.in_use += size

    def try_acquire(self, size: int) -> bool:
        if not self._fits(size):
            return False
        self.in_use += size
        return True

    def release(self, size: int) -> None:
        self.in_use = max(0, self.in_use - size)
        asyncio.ensure_future(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()
