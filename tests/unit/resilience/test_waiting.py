"""The one wait-on-a-dependency loop: it never gives up, and only its owner's stop ends it."""

from __future__ import annotations

import asyncio

import pytest

from pipeline.resilience.breaker import DependencyError, DependencyUnavailable
from pipeline.resilience.waiting import Abandoned, pause, until_done
from pipeline.runtime.outcomes import Abandoned as RuntimeAbandoned


class Flaky:
    """Fails with the given exceptions in turn, then answers."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "answered"


async def test_retries_until_the_dependency_answers_and_reports_each_failure() -> None:
    attempt = Flaky(DependencyError("sink", OSError("down")), DependencyError("sink", OSError()))
    told: list[tuple[str, int, float]] = []
    result = await until_done(
        attempt,
        retry_on=DependencyError,
        delay_s=lambda n: n / 1000,
        on_failure=lambda exc, n, delay: told.append((type(exc).__name__, n, delay)),
    )
    assert result == "answered"
    assert attempt.calls == 3
    assert told == [("DependencyError", 1, 0.001), ("DependencyError", 2, 0.002)]


async def test_an_open_breaker_is_waited_out_as_it_says_and_not_counted() -> None:
    attempt = Flaky(
        DependencyUnavailable("sink", retry_after_s=0.08),
        DependencyError("sink", OSError()),
        DependencyUnavailable("sink", retry_after_s=0.0),
    )
    told: list[tuple[int, float]] = []
    await until_done(
        attempt,
        retry_on=(DependencyUnavailable, DependencyError),
        delay_s=lambda n: 0.001 * n,
        on_failure=lambda exc, n, delay: told.append((n, delay)),
    )
    # The breaker's own delay (floored, never a busy loop), the failure count unchanged by it.
    assert told == [(0, 0.08), (1, 0.001), (1, 0.05)]


async def test_a_failure_it_was_not_told_to_wait_for_goes_straight_up() -> None:
    attempt = Flaky(ValueError("a bug, not an outage"))
    with pytest.raises(ValueError, match="a bug"):
        await until_done(attempt, retry_on=DependencyError, delay_s=lambda n: 0.0)
    assert attempt.calls == 1


async def test_stopping_during_a_long_wait_abandons_at_once() -> None:
    stopping = asyncio.Event()
    attempt = Flaky(*[DependencyError("dlq", OSError()) for _ in range(100)])
    waiting = asyncio.Event()
    task = asyncio.ensure_future(
        until_done(
            attempt,
            retry_on=DependencyError,
            delay_s=lambda n: 3600.0,
            stopping=stopping,
            on_failure=lambda *_: waiting.set(),
        )
    )
    await asyncio.wait_for(waiting.wait(), 5)
    stopping.set()
    with pytest.raises(Abandoned):
        await asyncio.wait_for(task, 5)  # not an hour
    assert attempt.calls == 1


async def test_an_owner_already_stopping_makes_no_attempt() -> None:
    stopping = asyncio.Event()
    stopping.set()
    attempt = Flaky()
    with pytest.raises(Abandoned):
        await until_done(attempt, retry_on=Exception, delay_s=lambda n: 0.0, stopping=stopping)
    assert attempt.calls == 0


async def test_pause_without_an_owner_just_sleeps_and_the_runtime_shares_the_exception() -> None:
    await pause(0.0, None)
    stopping = asyncio.Event()
    await pause(0.0, stopping)  # a wait that ran out is not abandoned
    assert RuntimeAbandoned is Abandoned
