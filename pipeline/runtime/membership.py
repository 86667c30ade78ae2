"""After the event loop stood still, publish nothing until the group says we still own it.

A replica frozen past its session timeout (SIGSTOP, a VM paused, a
handler that blocked the loop) has been dropped from the group: its
partitions are someone else's, who is redoing the records it held. When
it runs again it does not know that yet; it would finish its batches and
publish their outputs (a zombie's duplicates, interleaved with the new
owner's), and its rebalance callback, draining, would do the same.

So the loop's liveness is watched: a task ticks every quarter second, and
a publish checks, synchronously, how long ago the last tick was (after a
freeze the publishing task may well run before the ticker does). A stall
longer than the suspicion threshold makes every publish wait for one
membership check: a commit of the finished offsets, which the group
coordinator accepts only from a member of the current generation.
Accepted: publishing goes on. Refused: the batches in hand are abandoned
(neither published nor committed; their new owner redoes them) until the
next assignment. Each stall of a second or more is logged: a handler that
blocks the loop stops heartbeats, fetches and commits with it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from pipeline.metric_names import LOOP_STALLS, STALL_ABANDONED_BATCHES
from pipeline.metrics import Metrics

log = logging.getLogger("pipeline.worker")

TICK_S = 0.25
LOGGED_STALL_S = 1.0


class MembershipGuard:
    def __init__(
        self,
        confirm: Callable[[], Awaitable[bool]],
        suspect_after_s: float,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`confirm`: whether the group still counts this member (a commit it accepts)."""
        self._confirm = confirm
        self.suspect_after_s = suspect_after_s
        self._metrics = metrics
        self._clock = clock
        self.last_tick = clock()
        self._suspect = False
        self._lost = False
        self._checking: asyncio.Future[bool] | None = None

    async def run(self) -> None:
        """Tick until cancelled; log each stall of a second or more."""
        while True:
            await asyncio.sleep(TICK_S)
            self._tick()

    def _tick(self) -> None:
        now = self._clock()
        stalled = now - self.last_tick - TICK_S
        self.last_tick = now
        if stalled >= LOGGED_STALL_S:
            self._metrics.inc(LOOP_STALLS)
            log.warning(
                "the event loop stood still for %.1fs (a handler that blocks instead of "
                "awaiting, CPU-bound work on the loop, or a frozen process): heartbeats, "
                "fetches and commits stopped with it. Blocking or CPU-heavy handlers belong "
                "in run_in='thread' or 'process'.%s",
                stalled,
                " The group may have dropped this replica: outputs wait for a membership check."
                if stalled >= self.suspect_after_s
                else "",
            )
        if stalled >= self.suspect_after_s:
            self._suspect = True

    async def publishable(self) -> bool:
        """Whether a batch in hand may be published; False: abandon it."""
        if self._clock() - self.last_tick - TICK_S >= self.suspect_after_s:
            self._tick()  # the publishing task ran before the ticker did
        if self._lost:
            return False
        if not self._suspect:
            return True
        if self._checking is None:
            self._checking = asyncio.ensure_future(self._check())
        return await asyncio.shield(self._checking)

    async def _check(self) -> bool:
        try:
            member = await self._confirm()
        except Exception as exc:  # noqa: BLE001 - not confirmed is the safe answer
            log.warning("membership check after a stall failed: %s: %s", type(exc).__name__, exc)
            member = False
        self._checking = None
        self._suspect = False
        if member:
            log.info("still a member of the group after the stall: publishing goes on")
        else:
            self._lost = True
            log.warning(
                "the group dropped this replica during the stall: the batches in hand are "
                "abandoned, unpublished and uncommitted (their new owner redoes them)"
            )
        return member

    def abandoned(self) -> None:
        self._metrics.inc(STALL_ABANDONED_BATCHES)

    def regained(self) -> None:
        """A new assignment: this member's partitions are its own again."""
        self._lost = False
