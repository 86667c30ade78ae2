"""Running a long-lived process's main coroutine so that its exit cannot hang.

`asyncio.run` cancels the tasks left when the main coroutine returns and
waits for every one of them, without a limit. A worker's main coroutine
returns only after it drained, committed and left its group; a client
library's background task that mishandles cancellation (a rebalance in
flight while it closes) must not then keep the process alive past the
orchestrator's grace period. So leftover tasks get a bounded wait, and the
process says which ones it left behind.

SIGUSR1 logs every task's stack: a frozen process tells where it is stuck.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

from pipeline.errors import PipelineError

T = TypeVar("T")
log = logging.getLogger("pipeline.process")

LEFTOVER_TASKS_TIMEOUT_S = 5.0
CANCEL_WAIT_S = 2.0


async def cancel_and_wait(task: asyncio.Future[Any], timeout_s: float, what: str) -> bool:
    """Cancel `task` and wait for it at most `timeout_s`; False (and a warning) if it goes on.

    A handler or a client call that swallows CancelledError must cost a
    bounded wait at shutdown, not the whole grace period.
    """
    if not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=timeout_s)
    if not task.done():
        log.warning(
            "%s did not stop within %.0fs of being cancelled; going on without it", what, timeout_s
        )
        return False
    if not task.cancelled() and task.exception() is not None:
        log.debug("%s ended with %r", what, task.exception())
    return True


def dump_tasks() -> None:
    """Log the stack of every task of the running loop (the SIGUSR1 handler)."""
    tasks = asyncio.all_tasks()
    out = io.StringIO()
    for task in tasks:
        task.print_stack(limit=12, file=out)
    log.warning("SIGUSR1: %d asyncio task(s)\n%s", len(tasks), out.getvalue())


EVENT_LOOPS = ("asyncio", "uvloop")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The loop PIPELINE_EVENT_LOOP names: uvloop (the default where it is installed, as it
    is with the gateway's server on Linux and macOS) or asyncio's own.

    Measured on the worker at fixed rates, interleaved: p50 and p99 lower on
    every median, by a third to two thirds on aiokafka
    (bench/results/issue45-uvloop.json).
    """
    named = os.environ.get("PIPELINE_EVENT_LOOP", "").strip().lower()
    if named and named not in EVENT_LOOPS:
        raise PipelineError(
            f"PIPELINE_EVENT_LOOP={named!r} is not a loop this project runs on; "
            f"use one of {', '.join(EVENT_LOOPS)}"
        )
    if named == "asyncio":
        return asyncio.new_event_loop()
    try:
        import uvloop
    except ImportError as exc:
        if not named:
            return asyncio.new_event_loop()
        raise PipelineError(
            "PIPELINE_EVENT_LOOP=uvloop, but uvloop is not installed: pip install uvloop"
        ) from exc
    return uvloop.new_event_loop()


def run_process(
    main: Coroutine[Any, Any, T], leftover_timeout_s: float = LEFTOVER_TASKS_TIMEOUT_S
) -> T:
    """Run `main` to completion; leftover tasks get `leftover_timeout_s` to stop."""
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    loop.add_signal_handler(signal.SIGUSR1, dump_tasks)
    try:
        result = loop.run_until_complete(main)
        leftover = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in leftover:
            task.cancel()
        if leftover:
            _, pending = loop.run_until_complete(asyncio.wait(leftover, timeout=leftover_timeout_s))
            if pending:
                log.warning(
                    "%d background task(s) did not stop within %.0fs of cancellation; "
                    "exiting without them: %s",
                    len(pending),
                    leftover_timeout_s,
                    ", ".join(sorted(repr(task.get_coro()) for task in pending)),
                )
        loop.run_until_complete(loop.shutdown_asyncgens())
        return result
    finally:
        loop.remove_signal_handler(signal.SIGUSR1)
        asyncio.set_event_loop(None)
        loop.close()
