"""Group questions asked again while the group's coordinator moves or is still being elected.

On a fresh cluster the offsets topic does not exist until the first group
asks for it, and during a broker bounce the coordinator moves: for up to
half a minute the brokers answer "coordinator not available" or "not
coordinator", which a moment later they would not. Each adapter says which
of its errors mean that; the waiting is written once, here, in the two
shapes the adapters need (on the loop, and on a client's own thread).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

COORDINATOR_WAIT_S = 30.0
"""Longer than a coordinator election after a broker bounce takes on the local cluster."""
COORDINATOR_RETRY_S = 0.5


async def asking_until_coordinated(
    ask: Callable[[], Awaitable[T]], moving: Callable[[Exception], bool]
) -> T:
    """`ask()`'s answer; an error `moving` calls transient is asked again, for a while."""
    deadline = time.monotonic() + COORDINATOR_WAIT_S
    while True:
        try:
            return await ask()
        except Exception as exc:
            if not moving(exc) or time.monotonic() > deadline:
                raise
        await asyncio.sleep(COORDINATOR_RETRY_S)


def asking_until_coordinated_blocking(
    ask: Callable[[], T], moving: Callable[[Exception], bool]
) -> T:
    """The same on a client's own thread, where the loop is not ours to await on."""
    deadline = time.monotonic() + COORDINATOR_WAIT_S
    while True:
        try:
            return ask()
        except Exception as exc:
            if not moving(exc) or time.monotonic() > deadline:
                raise
        time.sleep(COORDINATOR_RETRY_S)
