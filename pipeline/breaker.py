"""A circuit breaker per dependency: stop calling what is down, probe, recover.

States: closed (calls go through, outcomes are recorded over a sliding
window), open (calls fail fast for `open_duration_s`), half-open (a few
probe calls; all succeed → closed, any fails → open again). A window trips
the breaker when, with at least `minimum_calls` outcomes, the failure rate
or the slow-call rate reaches its threshold.

The runtime treats an open breaker as "pause this partition and try again
later", never as a reason to dead-letter an event.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

from pipeline.errors import PipelineError

T = TypeVar("T")


class BreakerState(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class DependencyUnavailable(PipelineError):
    """The dependency's breaker is open: wait `retry_after_s`, do not dead-letter."""

    def __init__(self, name: str, retry_after_s: float) -> None:
        self.name = name
        self.retry_after_s = retry_after_s
        super().__init__(
            f"dependency {name!r} is unavailable (circuit open); retrying in {retry_after_s:.1f}s"
        )


class DependencyError(PipelineError):
    """A call to a dependency failed; the original exception is the cause."""

    def __init__(self, name: str, cause: BaseException) -> None:
        self.name = name
        super().__init__(f"call to dependency {name!r} failed: {type(cause).__name__}: {cause}")


@dataclass(frozen=True)
class BreakerPolicy:
    window: int = 20
    minimum_calls: int = 5
    failure_rate: float = 0.5
    slow_call_s: float = 2.0
    slow_call_rate: float = 0.8
    open_duration_s: float = 5.0
    half_open_probes: int = 2


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        policy: BreakerPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.policy = policy or BreakerPolicy()
        self._clock = clock
        self._outcomes: deque[tuple[bool, bool]] = deque(maxlen=self.policy.window)
        self.state = BreakerState.CLOSED
        self._opened_at = 0.0
        self._probes_started = 0
        self._probes_succeeded = 0

    def _to(self, state: BreakerState) -> None:
        self.state = state
        if state is BreakerState.OPEN:
            self._opened_at = self._clock()
        if state is BreakerState.HALF_OPEN:
            self._probes_started = 0
            self._probes_succeeded = 0
        if state is BreakerState.CLOSED:
            self._outcomes.clear()

    def retry_after_s(self) -> float:
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.policy.open_duration_s - self._clock())

    def before_call(self) -> None:
        """Raise DependencyUnavailable unless a call may go through now."""
        if self.state is BreakerState.OPEN:
            if self.retry_after_s() > 0:
                raise DependencyUnavailable(self.name, self.retry_after_s())
            self._to(BreakerState.HALF_OPEN)
        if self.state is BreakerState.HALF_OPEN:
            if self._probes_started >= self.policy.half_open_probes:
                raise DependencyUnavailable(self.name, self.policy.open_duration_s / 4)
            self._probes_started += 1

    def record(self, success: bool, duration_s: float) -> None:
        slow = duration_s >= self.policy.slow_call_s
        if self.state is BreakerState.HALF_OPEN:
            if not success or slow:
                self._to(BreakerState.OPEN)
                return
            self._probes_succeeded += 1
            if self._probes_succeeded >= self.policy.half_open_probes:
                self._to(BreakerState.CLOSED)
            return
        if self.state is BreakerState.OPEN:
            return
        self._outcomes.append((success, slow))
        calls = len(self._outcomes)
        if calls < self.policy.minimum_calls:
            return
        failures = sum(1 for ok, _ in self._outcomes if not ok)
        slow_calls = sum(1 for _, was_slow in self._outcomes if was_slow)
        if (
            failures / calls >= self.policy.failure_rate
            or slow_calls / calls >= self.policy.slow_call_rate
        ):
            self._to(BreakerState.OPEN)

    async def call(self, function: Callable[[], Awaitable[T]]) -> T:
        """Run `function` under the breaker; failures become DependencyError."""
        self.before_call()
        started = self._clock()
        try:
            result = await function()
        except Exception as exc:
            self.record(False, self._clock() - started)
            raise DependencyError(self.name, exc) from exc
        self.record(True, self._clock() - started)
        return result


class BreakerRegistry:
    """One breaker per dependency name per process, shared by all partitions."""

    def __init__(self, policies: dict[str, BreakerPolicy] | None = None) -> None:
        self._policies = policies or {}
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, name: str) -> CircuitBreaker:
        breaker = self._breakers.get(name)
        if breaker is None:
            breaker = CircuitBreaker(name, self._policies.get(name))
            self._breakers[name] = breaker
        return breaker

    def all(self) -> list[CircuitBreaker]:
        return list(self._breakers.values())
