"""A token bucket: the rate limit of `produce --rate`, replays and redrives.

Waiting is computed, not polled: a caller short of tokens sleeps exactly
until enough have accrued, so a limited publisher costs no CPU while it waits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    """Paces a publisher at `rate_per_s`, with a tenth of a second of burst.

    `await bucket.acquire(n)` before sending n records; change `rate_per_s`
    at any time to follow a load profile.
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate_per_s must be positive")
        self.rate_per_s = rate_per_s
        # A tenth of a second of burst keeps chunks flowing without letting a
        # limited job start with a second's worth of records at once.
        self.capacity = burst if burst is not None else max(1.0, rate_per_s / 10)
        self._clock = clock
        self._tokens = self.capacity
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate_per_s)
        self._updated = now

    def delay_for(self, count: float) -> float:
        """Seconds until `count` tokens are there; takes them (may go negative)."""
        self._refill()
        self._tokens -= count
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self.rate_per_s

    async def acquire(self, count: float = 1.0) -> None:
        delay = self.delay_for(count)
        if delay > 0:
            await asyncio.sleep(delay)
