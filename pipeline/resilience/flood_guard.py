"""The flood guard: pause a partition whose recent records mostly fail, not dead-letter them.

One bad record is its input's fault; half of all records failing is a
deploy's, a schema change's or a dependency's that the handler does not
call through `ctx.call`. Dead-lettering then would empty the topic into the
DLQ, and redriving it all later is work and risk. So the partition pauses
for a while, a person gets a loud log line, and the records wait.

The share is judged over the last `window` records in the order they were
handled, each success and each dead letter counted as it happens, so the
answer is the same whatever the batch size: counting successes only when
their batch ended made the first batch of any processor look 100% failed
once `minimum` records had failed in it (one failure in seven tripped it).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class FloodGuardPolicy:
    """When a partition's dead letters are a flood; `Processor(flood_guard=None)` turns it off."""

    max_share: float = 0.5
    """Dead letters above this share of the window trip the guard (1.0: never)."""
    window: int = 200
    """The last this many handled records are judged."""
    minimum: int = 50
    """Fewer handled records than this decide nothing (a partition's first records); >= 2."""
    pause_s: float = 30.0
    """How long a tripped partition waits before it tries the record again."""

    def __post_init__(self) -> None:
        if not 0 < self.max_share <= 1:
            raise ValueError("FloodGuardPolicy.max_share must be in (0, 1]")
        # After a pause the window is empty; with minimum 1 the record it paused for would
        # trip it again at once, for ever.
        if not 2 <= self.minimum <= self.window:
            raise ValueError("FloodGuardPolicy needs 2 <= minimum <= window")
        if self.pause_s <= 0:
            raise ValueError("FloodGuardPolicy.pause_s must be positive")


class FloodGuard:
    """One partition's recent outcomes; O(1) per record."""

    def __init__(self, policy: FloodGuardPolicy) -> None:
        self.policy = policy
        self._outcomes: deque[bool] = deque(maxlen=policy.window)
        self._dead = 0

    def record(self, dead_lettered: bool) -> None:
        outcomes = self._outcomes
        if len(outcomes) == outcomes.maxlen and outcomes[0]:
            self._dead -= 1
        outcomes.append(dead_lettered)
        self._dead += dead_lettered

    @property
    def share(self) -> float:
        return self._dead / len(self._outcomes) if self._outcomes else 0.0

    def trips_on_one_more(self) -> bool:
        """Would dead-lettering one more record put the window's share over the limit?"""
        outcomes = self._outcomes
        full = len(outcomes) == outcomes.maxlen
        total = len(outcomes) + (0 if full else 1)
        if total < self.policy.minimum:
            return False
        dead = self._dead + 1 - (1 if full and outcomes[0] else 0)
        return dead / total > self.policy.max_share

    def reset(self) -> None:
        self._outcomes.clear()
        self._dead = 0
