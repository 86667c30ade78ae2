"""The local supervisor's liveness probe: a worker whose /healthz stops answering is killed.

What Kubernetes does with a liveness probe, for `pipeline scale`: every
PERIOD_S each running worker's /healthz is asked, with a TIMEOUT_S
deadline; FAILURES in a row (no answer, or not 200) and the worker gets
SIGKILL, and the supervisor replaces it as it replaces any worker that
exits. A frozen event loop answers nothing (the endpoints run on it), so
this catches what the worker's own watchdog cannot: a call that holds the
GIL while it waits. A worker is judged only once it has answered once, or
after STARTUP_S (its imports, tables and first join take a while).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger("pipeline.supervisor")

PERIOD_S = 2.0
TIMEOUT_S = 1.0
FAILURES = 3
STARTUP_S = 60.0


class Probed(Protocol):
    """What the probe needs of a worker (pipeline.scaling.worker_process.WorkerProcess)."""

    replica_id: str
    port: int

    @property
    def process(self) -> subprocess.Popen[bytes]: ...

    @property
    def running(self) -> bool: ...

    def signal(self, sig: int) -> None: ...


@dataclass
class HealthProbe:
    workers: Callable[[], Mapping[str, Probed]]
    """The running workers (not those draining: they may stop answering on their way out)."""
    period_s: float = PERIOD_S
    timeout_s: float = TIMEOUT_S
    failures: int = FAILURES
    startup_s: float = STARTUP_S
    killed: int = 0
    _misses: dict[int, int] = field(default_factory=dict)
    _answered: set[int] = field(default_factory=set)
    _started: dict[int, float] = field(default_factory=dict)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            workers = list(self.workers().values())
            self._forget_all_but({w.process.pid for w in workers})
            await asyncio.gather(*(self._probe(w) for w in workers))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.period_s)

    def _forget_all_but(self, running: set[int]) -> None:
        """A supervisor runs for weeks: what it knew of replaced workers goes with them."""
        for known in (self._misses, self._started):
            for pid in set(known) - running:
                del known[pid]
        self._answered &= running

    async def _probe(self, worker: Probed) -> None:
        pid = worker.process.pid
        started = self._started.setdefault(pid, time.monotonic())
        if not worker.running:
            return
        answer = await self.ask_status(worker)
        if answer is not None and pid not in self._answered:
            self._answered.add(pid)  # up: from now on, misses count
            log.info("%s (pid %d) answers /healthz: probing it", worker.replica_id, pid)
        if answer == 200:
            self._misses.pop(pid, None)
            return
        if pid not in self._answered and time.monotonic() - started < self.startup_s:
            return
        misses = self._misses[pid] = self._misses.get(pid, 0) + 1
        if misses < self.failures:
            return
        self.killed += 1
        self._misses.pop(pid, None)
        log.warning(
            "%s (pid %d): /healthz %s %d times in a row (every %.0fs, %.0fs timeout): SIGKILL; "
            "it is replaced. A frozen event loop answers nothing; its log may say why",
            worker.replica_id,
            pid,
            "did not answer" if answer is None else f"answered {answer}",
            misses,
            self.period_s,
            self.timeout_s,
        )
        worker.signal(signal.SIGKILL)

    async def ask_status(self, worker: Probed) -> int | None:
        """The status of /healthz, or None when nothing answered within the timeout."""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", worker.port), self.timeout_s
            )
        except (OSError, TimeoutError):
            return None
        try:
            writer.write(b"GET /healthz HTTP/1.0\r\n\r\n")
            status_line = await asyncio.wait_for(reader.readline(), self.timeout_s)
            parts = status_line.split()
            return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None
        except (OSError, TimeoutError):
            return None
        finally:
            writer.close()
