"""A deadline on every handler call, so that a handler that never returns costs one record.

An `await` on something that never completes (an HTTP call without a
timeout, a lock nobody releases) would hold its record, the partition
behind it and, once liveness gives up on the partition, the replica, which
restarts, reads the same record and hangs again. With a deadline the call
is cancelled, and the record is retried and dead-lettered like any failure.

`asyncio.timeout` per call costs a timer per record, a tenth of the whole
per-record budget at full speed (docs/design-notes.md#handler-deadline).
Here a lane only notes when its call started; one timer per batch, while
the batch runs, looks at the lanes when the oldest call could first be
late, cancels the late ones and sets itself again for the next. The cancel
lands in the handler's own await: the timer fires only while a lane is
inside its call, and it runs on the same loop.

A handler run in a thread or a process is no longer awaited after its
deadline, but Python cannot stop it: its thread or process stays busy
until the call ends by itself.
"""

from __future__ import annotations

import asyncio
import time

from pipeline.kafka.port import Record
from pipeline.processor import HandlerTimeout


class LaneClock:
    """One lane's call in progress: when it started (0.0 when none) and whose task runs it."""

    __slots__ = ("fired", "started", "task")

    def __init__(self) -> None:
        self.started = 0.0
        self.task: asyncio.Task[object] | None = None
        self.fired = False


class HandlerDeadline:
    """The deadline of one partition's handler calls; `timeout_s=None` keeps no watch."""

    def __init__(self, timeout_s: float | None, lanes: int) -> None:
        self.timeout_s = timeout_s
        self.lanes = [LaneClock() for _ in range(lanes)]
        self._timer: asyncio.TimerHandle | None = None
        self.last_timeout = 0.0
        """time.monotonic() of the last cancelled call: the partition is slow, not stuck."""

    def arm(self) -> None:
        """Watch the calls of a batch about to run."""
        if self.timeout_s is not None and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.timeout_s, self._check)

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        assert self.timeout_s is not None
        loop = asyncio.get_running_loop()
        now = loop.time()
        next_check = now + self.timeout_s  # a call that starts after now is due no sooner
        for lane in self.lanes:
            if not lane.started or lane.task is None:
                continue
            due = lane.started + self.timeout_s
            if due <= now:
                if not lane.fired:
                    lane.fired = True
                    lane.task.cancel()
            else:
                next_check = min(next_check, due)
        self._timer = loop.call_at(next_check, self._check)

    def timed_out(self, lane: LaneClock, record: Record) -> HandlerTimeout | None:
        """After a call was cancelled: the timeout it was, or None for another cancel."""
        if not lane.fired:
            return None
        lane.fired = False
        if lane.task is not None:
            lane.task.uncancel()
        self.last_timeout = time.monotonic()
        assert self.timeout_s is not None
        return HandlerTimeout(self.timeout_s, record.topic, record.partition, record.offset)

    def ended(self, lane: LaneClock) -> None:
        """A call returned: a cancel it outran is taken back."""
        lane.started = 0.0
        if lane.fired:
            lane.fired = False
            if lane.task is not None:
                lane.task.uncancel()
