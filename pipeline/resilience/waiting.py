"""Waiting on a dependency until it answers: one loop for every place that must not give up.

A sink, the DLQ topic, the schema registry and the gateway's brokers share
one rule: their failure is not the records' fault, so the work waits and
tries again, for as long as it takes, and only its owner stopping ends the
wait. Written once here, each user says only what it tries, what counts as
"not yet", how long to wait, and what to log.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pipeline.resilience.breaker import DependencyUnavailable

T = TypeVar("T")

BREAKER_RECHECK_FLOOR_S = 0.05
"""An open breaker that says "now" is asked again no sooner than this."""


class Abandoned(Exception):
    """Its owner stops (a partition revoked, a worker stopping): leave the work unfinished."""


async def pause(seconds: float, stopping: asyncio.Event | None) -> None:
    """Sleep, cut short by `stopping`: raise Abandoned rather than wait out a delay nobody needs."""
    if stopping is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), timeout=seconds)
        raise Abandoned


async def until_done(
    attempt: Callable[[], Awaitable[T]],
    *,
    retry_on: type[BaseException] | tuple[type[BaseException], ...],
    delay_s: Callable[[int], float],
    stopping: asyncio.Event | None = None,
    on_failure: Callable[[BaseException, int, float], None] | None = None,
) -> T:
    """What `attempt` returns, once it returns; every `retry_on` failure waits and tries again.

    `delay_s(n)` is the wait after the n-th failure. An open breaker
    (DependencyUnavailable) is not a failure: it says when to come back, and
    the count of failures does not grow while it is open. `on_failure(exc,
    failures, delay)` is told before each wait (to log, count, mark the
    caller as waiting). Abandoned once `stopping` is set, checked before
    each attempt and during each wait.
    """
    failures = 0
    while True:
        if stopping is not None and stopping.is_set():
            raise Abandoned
        try:
            return await attempt()
        except retry_on as exc:
            if isinstance(exc, DependencyUnavailable):
                delay = max(BREAKER_RECHECK_FLOOR_S, exc.retry_after_s)
            else:
                failures += 1
                delay = delay_s(failures)
            if on_failure is not None:
                on_failure(exc, failures, delay)
            await pause(delay, stopping)
