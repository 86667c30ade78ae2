"""The circuit breaker: opens on an outage, not on a few failures among many; closes under load."""

from __future__ import annotations

import asyncio
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.resilience.breaker import (
    BreakerPolicy,
    BreakerState,
    CircuitBreaker,
    DependencyError,
    DependencyUnavailable,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fail(breaker: CircuitBreaker, times: int = 1, slow: float = 0.01) -> None:
    for _ in range(times):
        probe = breaker.before_call()
        breaker.record(False, slow, probe, "ConnectionError: refused")


def succeed(breaker: CircuitBreaker, times: int = 1, duration: float = 0.01) -> None:
    for _ in range(times):
        probe = breaker.before_call()
        breaker.record(True, duration, probe)


def test_opens_on_the_failure_rate_once_there_are_enough_calls(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    breaker = CircuitBreaker("db", BreakerPolicy(minimum_calls=4, open_duration_s=5), clock)
    with caplog.at_level(logging.INFO, logger="pipeline.breaker"):
        fail(breaker, 3)
        assert breaker.state is BreakerState.CLOSED  # below minimum calls
        fail(breaker)
    assert breaker.state is BreakerState.OPEN
    assert caplog.messages == [
        "breaker db opened: 4 of 4 calls failed in the last 10s "
        "(last: ConnectionError: refused); calls fail fast for 5.0s"
    ]
    with pytest.raises(DependencyUnavailable) as caught:
        breaker.before_call()
    assert caught.value.retry_after_s == pytest.approx(5)


def test_a_few_timeouts_among_thousands_of_calls_open_nothing() -> None:
    clock = Clock()
    breaker = CircuitBreaker("kafka", BreakerPolicy(minimum_calls=3), clock)
    for second in range(10):
        clock.now = 1000.0 + second
        succeed(breaker, 500)
        fail(breaker, 4 if second == 5 else 0)  # a burst of failures in one second
        if second == 6:
            fail(breaker, 37)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.transitions == 0


def test_outcomes_older_than_the_window_no_longer_count() -> None:
    clock = Clock()
    breaker = CircuitBreaker("db", BreakerPolicy(window_s=10, minimum_calls=6), clock)
    fail(breaker, 5)
    clock.now += 11
    succeed(breaker, 5)
    fail(breaker, 1)  # 6 calls in the window, one failed: the old failures are gone
    assert breaker.state is BreakerState.CLOSED


def test_slow_calls_open_the_breaker() -> None:
    breaker = CircuitBreaker(
        "api", BreakerPolicy(minimum_calls=5, slow_call_s=1, slow_call_rate=0.6), Clock()
    )
    succeed(breaker, 5, duration=2.0)
    assert breaker.state is BreakerState.OPEN


def test_half_open_probes_close_it_when_they_succeed(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    policy = BreakerPolicy(minimum_calls=1, open_duration_s=5, half_open_calls=3)
    breaker = CircuitBreaker("db", policy, clock)
    fail(breaker)
    clock.now += 5
    with caplog.at_level(logging.INFO, logger="pipeline.breaker"):
        probes = [breaker.before_call() for _ in range(3)]
        assert breaker.state is BreakerState.HALF_OPEN
        with pytest.raises(DependencyUnavailable):
            breaker.before_call()  # every probe is out
        for probe in probes:
            breaker.record(True, 0.01, probe)
    assert breaker.state is BreakerState.CLOSED
    assert caplog.messages[-2:] == [
        "breaker db half-open: 5.0s open are over; probing with 3 call(s)",
        "breaker db closed: 3 of 3 probes succeeded",
    ]


def test_failing_probes_reopen_it_as_soon_as_closing_is_impossible() -> None:
    clock = Clock()
    policy = BreakerPolicy(minimum_calls=1, open_duration_s=1, half_open_calls=4)
    breaker = CircuitBreaker("db", policy, clock)
    fail(breaker)
    clock.now += 1
    probes = [breaker.before_call() for _ in range(4)]
    breaker.record(False, 0.01, probes[0])
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record(False, 0.01, probes[1])  # 2 of 4 at a 50% threshold: it cannot close
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_after_s() == pytest.approx(1)
    breaker.record(True, 0.01, probes[2])  # a late probe of that period changes nothing
    assert breaker.state is BreakerState.OPEN


async def test_callers_wait_for_the_probes_verdict_instead_of_being_refused() -> None:
    policy = BreakerPolicy(minimum_calls=1, open_duration_s=0.05, half_open_calls=2)
    breaker = CircuitBreaker("kafka", policy)
    fail(breaker)
    await asyncio.sleep(0.06)

    async def answer() -> str:
        await asyncio.sleep(0.01)
        return "ok"

    results = await asyncio.gather(*(breaker.call(answer) for _ in range(50)))
    assert results == ["ok"] * 50
    assert breaker.state is BreakerState.CLOSED


async def test_a_caller_is_refused_when_the_verdict_does_not_come_in_time() -> None:
    policy = BreakerPolicy(
        minimum_calls=1, open_duration_s=0, half_open_calls=1, half_open_wait_s=0.05
    )
    breaker = CircuitBreaker("kafka", policy)
    fail(breaker)
    hang = asyncio.Event()
    probe = asyncio.ensure_future(breaker.call(hang.wait))
    await asyncio.sleep(0)
    with pytest.raises(DependencyUnavailable):
        await breaker.call(hang.wait)
    probe.cancel()  # a cancelled probe gives its slot back
    await asyncio.gather(probe, return_exceptions=True)

    async def ok() -> int:
        return 1

    assert await breaker.call(ok) == 1


async def test_call_wraps_failures() -> None:
    breaker = CircuitBreaker("api")

    async def boom() -> None:
        raise ConnectionError("refused")

    with pytest.raises(
        DependencyError, match="call to dependency 'api' failed: ConnectionError: refused"
    ):
        await breaker.call(boom)


outcomes = st.lists(
    st.tuples(st.floats(0, 3), st.booleans(), st.sampled_from([0.01, 5.0])), max_size=300
)


@given(outcomes)
def test_it_opens_exactly_when_the_window_says_so(steps: list[tuple[float, bool, float]]) -> None:
    """Against an independent reading of the rule: the rates over the last window_s seconds."""
    clock = Clock()
    policy = BreakerPolicy(window_s=10, minimum_calls=5, open_duration_s=1e9)
    breaker = CircuitBreaker("x", policy, clock)
    seen: list[tuple[float, bool, bool]] = []
    for gap, ok, duration in steps:
        clock.now += gap
        breaker.before_call()
        breaker.record(ok, duration)
        seen.append((clock.now, not ok, duration >= policy.slow_call_s))
        recent = [s for s in seen if int(s[0]) + 1 > clock.now - policy.window_s]
        calls = len(recent)
        failures = sum(1 for s in recent if s[1])
        slow = sum(1 for s in recent if s[2])
        should_open = calls >= policy.minimum_calls and (
            failures / calls >= policy.failure_rate or slow / calls >= policy.slow_call_rate
        )
        assert (breaker.state is BreakerState.OPEN) == should_open
        if should_open:
            return
