"""A worker that notices its own frozen event loop, says what froze it, and exits.

A handler that never yields (an endless loop, a backtracking regex, a
blocking C call) stops the loop, and with it heartbeats, fetches, commits
and /healthz. The group drops the replica, but the process lives on,
frozen: a supervisor that watches processes (systemd, Docker's restart
policy, `pipeline scale`) never restarts it, and quarantine never gets its
next owner. So a thread outside the loop watches a heartbeat the loop
beats; when the loop stands still longer than the liveness stall it logs
one line naming the processor and each record in a handler
(topic-partition@offset), then every task's stack and the frozen thread's,
and exits with EXIT_FROZEN_LOOP, which any supervisor restarts.

A C call that never releases the GIL (Python's `re` holds it while it
backtracks) stops that thread too. For that case a timer of the process's
CPU time, rearmed by every beat, fires once the process has spent
stall + BACKSTOP_S seconds of CPU without a beat: faulthandler, which needs
no GIL, writes every thread's stack to stderr, and SIGVTALRM's default
action ends the process (killed by signal 26). CPU time, not wall time: a
stopped process spends none, and a healthy one cannot spend that much
between two beats half a second apart. A call that holds the GIL and
sleeps is caught by neither: the supervisor's probe of /healthz is the
line behind them.

A whole process stopped and continued (SIGSTOP, a paused VM) stops the
watchdog too: a round in which the watchdog itself overslept is not
judged, so the loop gets its chance to beat first.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import io
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator

log = logging.getLogger("pipeline.worker")

EXIT_FROZEN_LOOP = 5
BEAT_S = 0.5
BACKSTOP_S = 15.0
"""How much longer than the stall the GIL-free backstop waits for the watchdog thread."""
STACK_FRAMES = 12


class LoopWatchdog:
    def __init__(
        self,
        stall_s: float,
        in_hand: Callable[[], list[str]],
        processor: str,
        uncommitted: Callable[[], int] = lambda: 0,
        exit_process: Callable[[int], object] = os._exit,
        backstop_s: float = BACKSTOP_S,
    ) -> None:
        """`in_hand`: topic-partition@offset of each record in a handler; `uncommitted`:
        records taken and not committed, which the next owners redo."""
        self.stall_s = stall_s
        self.backstop_s = backstop_s
        self._beat_s = min(BEAT_S, stall_s / 4)
        self._in_hand = in_hand
        self._uncommitted = uncommitted
        self._processor = processor
        self._exit = exit_process
        self._last_beat = time.monotonic()
        self._stopped = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._beat_handle: asyncio.TimerHandle | None = None
        self._loop_thread: int | None = None
        self._backstop = False
        self.fired = threading.Event()

    @contextlib.contextmanager
    def watching(self, loop: asyncio.AbstractEventLoop, backstop: bool = True) -> Iterator[None]:
        """`backstop`: also arm the GIL-free timer (a process-wide SIGVTALRM: workers only)."""
        self._loop = loop
        self._loop_thread = threading.get_ident()  # called on the loop's thread
        self._backstop = backstop
        if backstop:
            faulthandler.register(signal.SIGVTALRM, file=sys.stderr, all_threads=True, chain=True)
        self._beat()
        thread = threading.Thread(target=self._watch, name="loop-watchdog", daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stopped.set()
            if self._beat_handle is not None:
                self._beat_handle.cancel()
            if backstop:
                signal.setitimer(signal.ITIMER_VIRTUAL, 0)
                faulthandler.unregister(signal.SIGVTALRM)
            thread.join(2 * self._beat_s)

    def _beat(self) -> None:
        self._last_beat = time.monotonic()
        if self._backstop:
            signal.setitimer(signal.ITIMER_VIRTUAL, self.stall_s + self.backstop_s)
        assert self._loop is not None
        if not self._stopped.is_set():
            self._beat_handle = self._loop.call_later(self._beat_s, self._beat)

    def _watch(self) -> None:
        interval = min(1.0, self.stall_s / 4)
        woke = time.monotonic()
        while not self._stopped.wait(interval):
            now = time.monotonic()
            overslept = now - woke > interval + max(1.0, interval)
            woke = now
            if overslept:
                continue  # the whole process was stopped: let the loop beat first
            still = now - self._last_beat
            if still > self.stall_s:
                self._fire(still)
                return

    def _fire(self, still_s: float) -> None:
        in_hand = self._in_hand()
        log.critical(
            "the event loop stood still for %.0fs (over the %.0fs liveness stall) in processor "
            "%s; in a handler: %s; %d record(s) taken and not committed (the next owners redo "
            "them). Exiting %d so that the supervisor restarts this replica; a record in hand "
            "at its owner's end is counted and quarantined after quarantine_after such ends. "
            "Stacks follow.",
            still_s,
            self.stall_s,
            self._processor,
            ", ".join(in_hand) if in_hand else "no record (the loop froze outside a handler)",
            self._uncommitted(),
            EXIT_FROZEN_LOOP,
        )
        log.critical("stacks of the frozen loop:\n%s", self._stacks())
        self.fired.set()
        for handler in logging.getLogger().handlers:
            with contextlib.suppress(Exception):  # the exit must not wait on a broken handler
                handler.flush()
        self._exit(EXIT_FROZEN_LOOP)

    def _stacks(self) -> str:
        """The loop thread's stack where it froze, then each task's (read from this thread
        while the loop stands still: a snapshot)."""
        parts: list[str] = []
        frames = sys._current_frames()
        if self._loop_thread in frames:
            stack = traceback.format_stack(frames[self._loop_thread], limit=-STACK_FRAMES)
            parts.append("the loop's thread, where it stands (innermost last):\n" + "".join(stack))
        try:
            tasks = list(asyncio.all_tasks(self._loop)) if self._loop is not None else []
        except RuntimeError as exc:  # the task set changed as it was read
            tasks = []
            parts.append(f"tasks not readable: {exc}")
        for task in tasks:
            out = io.StringIO()
            task.print_stack(limit=STACK_FRAMES, file=out)
            parts.append(out.getvalue())
        return "\n".join(parts)
