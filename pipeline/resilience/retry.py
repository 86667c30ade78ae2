"""How long to wait before trying a failed record again.

Exponential backoff with jitter: the delay doubles per attempt up to a cap,
and each replica waits a random part of it, so replicas that failed on the
same outage do not all come back in the same millisecond.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

_shared_rng = random.Random()
MAX_DOUBLINGS = 62


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    """Handler calls per record, the first included, before it is dead-lettered."""
    base_delay_s: float = 0.1
    max_delay_s: float = 10.0
    jitter: float = 0.5
    """Fraction of the delay that is random: 0.5 waits between 50% and 100% of it."""

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("RetryPolicy.jitter must be between 0 and 1")

    def delay_s(self, failed_attempts: int, rng: random.Random | None = None) -> float:
        """Wait after the `failed_attempts`-th failure (1-based).

        The exponent is capped: a dependency down for a long time counts
        thousands of failures, and 2**1024 does not fit in a float (the
        partition's worker crashed with OverflowError after ~1,000 retries).
        """
        doublings = min(MAX_DOUBLINGS, max(0, failed_attempts - 1))
        ceiling = min(self.max_delay_s, self.base_delay_s * (2**doublings))
        draw = float((rng or _shared_rng).random())
        return float(ceiling * (1 - draw * self.jitter))
