"""A circuit breaker per dependency: stop calling what is down, probe, recover.

Closed: calls go through and their outcomes are counted over the last
`window_s` seconds. The breaker opens when, with at least `minimum_calls`
calls in that window, the failure rate or the slow-call rate reaches its
threshold. The window is a time, not a count of calls, so the number of
calls a decision rests on grows with traffic: at a thousand calls a second
a burst of forty timeouts is half a percent of the window and trips nothing
(a window of the last 20 calls opened on it and shed most of a gateway's
traffic); at a few calls a minute `minimum_calls` keeps one failure from
deciding.

Open: calls fail fast with DependencyUnavailable, which says when to come
back, for `open_duration_s`.

Half-open: the next `half_open_calls` calls go through as probes. A caller
that arrives while the probes are out waits for their verdict (up to
`half_open_wait_s`) instead of failing, so a busy caller is not turned away
while the breaker tests the dependency. A failure rate (or slow rate) among
the probes under the thresholds closes the breaker; at or over them it opens
again, as soon as that is certain.

Every transition is logged once, with the counts that caused it. The
runtime treats an open breaker as "pause this partition and try again
later", never as a reason to dead-letter an event.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

from pipeline.errors import PipelineError

T = TypeVar("T")
log = logging.getLogger("pipeline.breaker")


class BreakerState(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"

    @property
    def level(self) -> int:
        """For a gauge: 0 closed, 1 half-open, 2 open."""
        return {"closed": 0, "half_open": 1, "open": 2}[self.value]


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
    window_s: float = 10.0
    """Outcomes are counted over the last this many seconds."""
    minimum_calls: int = 5
    """Fewest calls in the window before a rate can open the breaker."""
    failure_rate: float = 0.5
    slow_call_s: float = 2.0
    slow_call_rate: float = 0.8
    open_duration_s: float = 5.0
    half_open_calls: int = 10
    """Probes let through once the open duration is over; their outcomes decide."""
    half_open_wait_s: float = 2.0
    """How long a caller waits for the probes' verdict before it is refused."""

    def __post_init__(self) -> None:
        if self.window_s <= 0 or self.open_duration_s < 0 or self.half_open_wait_s < 0:
            raise ValueError("BreakerPolicy: window_s must be positive, durations not negative")
        if self.minimum_calls < 1 or self.half_open_calls < 1:
            raise ValueError("BreakerPolicy: minimum_calls and half_open_calls must be at least 1")


class _Window:
    """Calls, failures and slow calls of the last `seconds`, in one-second buckets."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._buckets: deque[list[int]] = deque()  # [second, calls, failures, slow]
        self.calls = self.failures = self.slow = 0

    def add(self, now: float, failed: bool, slow: bool) -> None:
        second = int(now)
        if not self._buckets or self._buckets[-1][0] != second:
            self._buckets.append([second, 0, 0, 0])
        bucket = self._buckets[-1]
        bucket[1] += 1
        bucket[2] += failed
        bucket[3] += slow
        self.calls += 1
        self.failures += failed
        self.slow += slow
        self.expire(now)

    def expire(self, now: float) -> None:
        oldest = now - self.seconds
        while self._buckets and self._buckets[0][0] + 1 <= oldest:
            _, calls, failures, slow = self._buckets.popleft()
            self.calls -= calls
            self.failures -= failures
            self.slow -= slow

    def clear(self) -> None:
        self._buckets.clear()
        self.calls = self.failures = self.slow = 0


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
        self._window = _Window(self.policy.window_s)
        self.state = BreakerState.CLOSED
        self.transitions = 0
        self._opened_at = 0.0
        self._probes_started = 0
        self._probe_failures = 0
        self._probe_slow = 0
        self._probes_done = 0
        self._period = 0
        """Counts half-open periods, so a probe of an earlier one is not counted in this one."""
        self._verdict: asyncio.Event | None = None
        self._last_error = ""

    # -- state ------------------------------------------------------------------------

    def _to(self, state: BreakerState, why: str) -> None:
        self.state = state
        self.transitions += 1
        if state is BreakerState.OPEN:
            self._opened_at = self._clock()
            log.warning(
                "breaker %s opened: %s; calls fail fast for %.1fs",
                self.name,
                why,
                self.policy.open_duration_s,
            )
        elif state is BreakerState.HALF_OPEN:
            self._period += 1
            self._probes_started = self._probes_done = 0
            self._probe_failures = self._probe_slow = 0
            log.info("breaker %s half-open: %s", self.name, why)
        else:
            self._window.clear()
            log.info("breaker %s closed: %s", self.name, why)
        if state is not BreakerState.HALF_OPEN and self._verdict is not None:
            self._verdict.set()  # wakes callers waiting for the probes
            self._verdict = None

    def retry_after_s(self) -> float:
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.policy.open_duration_s - self._clock())

    def _refresh(self) -> None:
        if self.state is BreakerState.OPEN and self.retry_after_s() <= 0:
            self._to(
                BreakerState.HALF_OPEN,
                f"{self.policy.open_duration_s:.1f}s open are over; "
                f"probing with {self.policy.half_open_calls} call(s)",
            )

    # -- admission -----------------------------------------------------------------------

    def before_call(self) -> int:
        """Admit a call now or raise DependencyUnavailable; a probe gets its period, others 0.

        A call refused because the probes are out is better awaited with
        `admit`, which waits for their verdict.
        """
        self._refresh()
        if self.state is BreakerState.OPEN:
            raise DependencyUnavailable(self.name, self.retry_after_s())
        if self.state is BreakerState.HALF_OPEN:
            if self._probes_started >= self.policy.half_open_calls:
                raise DependencyUnavailable(self.name, self.policy.half_open_wait_s)
            self._probes_started += 1
            return self._period
        return 0

    async def admit(self) -> int:
        """Like before_call, but a caller that finds the probes out waits for their verdict."""
        deadline = self._clock() + self.policy.half_open_wait_s
        while True:
            self._refresh()
            probes_out = (
                self.state is BreakerState.HALF_OPEN
                and self._probes_started >= self.policy.half_open_calls
            )
            if not probes_out:
                return self.before_call()
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise DependencyUnavailable(self.name, self.policy.half_open_wait_s)
            if self._verdict is None:
                self._verdict = asyncio.Event()
            try:
                await asyncio.wait_for(self._verdict.wait(), remaining)
            except TimeoutError:
                raise DependencyUnavailable(self.name, self.policy.half_open_wait_s) from None

    # -- outcomes -------------------------------------------------------------------------

    def record(self, success: bool, duration_s: float, probe: int = 0, error: str = "") -> None:
        """One call's outcome; `probe` is what before_call returned for it."""
        slow = duration_s >= self.policy.slow_call_s
        if error:
            self._last_error = error
        if probe:
            if probe == self._period:
                self._record_probe(success, slow)
            return
        if self.state is not BreakerState.CLOSED:
            return  # a call admitted before the breaker opened: the window starts anew
        window = self._window
        window.add(self._clock(), not success, slow)
        if window.calls < self.policy.minimum_calls:
            return
        if window.failures / window.calls >= self.policy.failure_rate:
            why = f"{window.failures} of {window.calls} calls failed"
        elif window.slow / window.calls >= self.policy.slow_call_rate:
            why = f"{window.slow} of {window.calls} calls took {self.policy.slow_call_s:.1f}s+"
        else:
            return
        last = f" (last: {self._last_error})" if self._last_error else ""
        self._to(BreakerState.OPEN, f"{why} in the last {self.policy.window_s:.0f}s{last}")

    def _record_probe(self, success: bool, slow: bool) -> None:
        if self.state is not BreakerState.HALF_OPEN:
            return
        self._probes_done += 1
        self._probe_failures += not success
        self._probe_slow += slow
        calls = self.policy.half_open_calls
        failures_to_open = math.ceil(self.policy.failure_rate * calls)
        slow_to_open = math.ceil(self.policy.slow_call_rate * calls)
        if self._probe_failures >= failures_to_open or self._probe_slow >= slow_to_open:
            last = f" (last: {self._last_error})" if self._last_error else ""
            self._to(
                BreakerState.OPEN,
                f"{self._probe_failures} of {self._probes_done} probe(s) failed, "
                f"{self._probe_slow} slow{last}",
            )
        elif self._probes_done >= calls:
            self._to(
                BreakerState.CLOSED,
                f"{calls - self._probe_failures} of {calls} probes succeeded",
            )

    async def call(self, function: Callable[[], Awaitable[T]]) -> T:
        """Run `function` under the breaker; failures become DependencyError."""
        probe = await self.admit()
        started = self._clock()
        try:
            result = await function()
        except Exception as exc:
            error = (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)[:200]
            self.record(False, self._clock() - started, probe, error)
            raise DependencyError(self.name, exc) from exc
        except asyncio.CancelledError:
            if probe and probe == self._period and self.state is BreakerState.HALF_OPEN:
                self._probes_started -= 1  # an unfinished probe must not hold the verdict back
            raise
        self.record(True, self._clock() - started, probe)
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
