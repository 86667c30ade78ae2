"""Futures that resolve in the callback of the last acknowledgement they wait for.

`asyncio.gather` and a task awaiting it each put a turn of the event loop
between the broker's acknowledgement and whoever waits for it: a callback
scheduled now runs in the loop's next iteration, after every handler batch
already ready. A worker at half its maximum rate spends milliseconds per
iteration, and an output's acknowledgement passed through seven such links
(docs/benchmarks.md, `acknowledged`). These resolve in the same callback
as the last input, so they add none.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def all_settled(futures: Sequence[asyncio.Future[T]]) -> asyncio.Future[list[T | BaseException]]:
    """Each future's result or exception, in order, once all are done (never sooner).

    As `gather(..., return_exceptions=True)`, one loop turn sooner. Cancelling
    the result leaves the inputs alone: they are acknowledgements in flight,
    not work of the caller's to stop.
    """
    outcome: asyncio.Future[list[T | BaseException]] = asyncio.get_running_loop().create_future()
    remaining = len(futures)
    if not remaining:
        outcome.set_result([])
        return outcome

    def one_done(_: asyncio.Future[T]) -> None:
        nonlocal remaining
        remaining -= 1
        if remaining or outcome.done():
            return
        outcomes: list[T | BaseException] = []
        for future in futures:
            failure = _failure_of(future)
            outcomes.append(failure if failure is not None else future.result())
        outcome.set_result(outcomes)

    for future in futures:
        future.add_done_callback(one_done)
    return outcome


def all_succeeded(futures: Sequence[asyncio.Future[T]]) -> asyncio.Future[list[T]]:
    """Every result once all succeeded, or the first failure as soon as it happens.

    As `gather(...)`, one loop turn sooner; the others' failures are read so
    that none is reported as never retrieved.
    """
    outcome: asyncio.Future[list[T]] = asyncio.get_running_loop().create_future()
    remaining = len(futures)
    if not remaining:
        outcome.set_result([])
        return outcome

    def one_done(future: asyncio.Future[T]) -> None:
        nonlocal remaining
        remaining -= 1
        failure = _failure_of(future)
        if outcome.done():
            return
        if failure is not None:
            outcome.set_exception(failure)
        elif not remaining:
            outcome.set_result([done.result() for done in futures])

    for future in futures:
        future.add_done_callback(one_done)
    return outcome


def _failure_of(future: asyncio.Future[T]) -> BaseException | None:
    """The future's exception (read, so never reported as unretrieved), or its cancellation."""
    if future.cancelled():
        return asyncio.CancelledError()
    return future.exception()
