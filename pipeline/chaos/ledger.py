"""What a chaos run changed on the machine, written down before each change.

A fault leaves the machine changed: a tmpfs mounted over a broker's log
directory, the directory's data moved aside, a worker stopped with
SIGSTOP, replicas and a whole cluster running. A `finally` undoes that
only if the process lives to run it; SIGKILL, a CI timeout or a closed
terminal skip it. So each change is first recorded in a ledger file of
the run's own (one per process, in a folder shared by the machine's
runs), and struck out once undone. Whatever a run did not live to undo,
the next `pipeline chaos run` or `pipeline infra up` finds in the ledger
of a process that no longer exists, and undoes (pipeline.chaos.sweep).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import secrets
import signal
import tempfile
import types
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

from pipeline.chaos.undo import Undo, undo, undo_newest_first
from pipeline.dev.process_table import start_time

log = logging.getLogger("pipeline.chaos")


def ledger_dir() -> Path:
    """Shared by every project on the machine: a cluster of `--own-cluster` lives in /tmp."""
    default = Path(tempfile.gettempdir()) / f"pipeline-chaos-ledgers-{os.getuid()}"
    return Path(os.environ.get("PIPELINE_CHAOS_LEDGER_DIR", default))


class Ledger:
    """This process's changes, oldest first; undone newest first."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        owner = f"{os.getpid()}-{start_time(os.getpid()) or 0}"
        self.path = folder / f"{owner}-{secrets.token_hex(4)}.json"
        self.entries: list[Undo] = []
        self.undoing = False
        """Set from the first terminating signal on: later ones must not cut the cleanup short."""

    def record(self, change: Undo) -> Undo:
        """Call before making the change: a kill in between leaves only a harmless undo."""
        self.entries.append(change)
        self._write()
        return change

    def forget(self, change: Undo) -> None:
        """The change was undone another way (a replica stopped cleanly, a folder removed)."""
        if change in self.entries:
            self.entries.remove(change)
            self._write()

    def settle(self, change: Undo) -> None:
        """Undo one change now; raises if it cannot be undone, keeping it recorded."""
        if change not in self.entries:
            return
        for line in undo(change):
            log.info("chaos cleanup: %s", line)
        self.forget(change)

    def undo_since(self, count: int) -> list[str]:
        """Undo every change recorded after the first `count`, newest first.

        Each is tried even when one before it fails; the failures are raised
        together at the end, and stay recorded for the next sweep.
        """
        was_undoing, self.undoing = self.undoing, True
        try:
            done, failed = undo_newest_first(self.entries[count:])
            for change in self.entries[count:]:
                if all(change is not f for f, _ in failed):
                    self.forget(change)
        finally:
            self.undoing = was_undoing
        for line in done:
            log.info("chaos cleanup: %s", line)
        if failed:
            raise OSError(
                "chaos cleanup could not undo: "
                + "; ".join(
                    f"{change.kind} {change.path or change.pid}: {exc}" for change, exc in failed
                )
                + f" (recorded in {self.path}; `pipeline chaos sweep` tries again)"
            )
        return done

    def close(self) -> None:
        self.undo_since(0)
        self.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # another run's ledger is still in it
            self.path.parent.rmdir()

    def _write(self) -> None:
        if not self.entries:
            self.path.unlink(missing_ok=True)
            return
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # a close may remove it
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(dump_ledger(self.entries))
        tmp.replace(self.path)


def dump_ledger(changes: list[Undo]) -> str:
    return json.dumps([asdict(change) for change in changes], indent=1)


def ledger_owner(path: Path) -> tuple[int, int] | None:
    """The pid and start time of the process a ledger file belongs to (its name says)."""
    pid, started, *_ = [*path.stem.split("-"), "", ""]
    if not (pid.isdigit() and started.isdigit()):
        return None
    return int(pid), int(started)


def read_ledger(path: Path) -> list[Undo]:
    return [Undo(**entry) for entry in json.loads(path.read_text())]


TERMINATING = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


@contextlib.contextmanager
def guarded(folder: Path | None = None) -> Iterator[Ledger]:
    """A ledger undone however the run ends, short of SIGKILL (which the next sweep covers).

    SIGTERM and SIGHUP (a closed terminal) become SystemExit so every
    `finally` runs, as Ctrl-C's KeyboardInterrupt does; a second signal
    while cleaning up is logged, not obeyed, so the cleanup is not cut
    short. atexit covers an exit that bypasses the `with`.
    """
    ledger = Ledger(folder or ledger_dir())
    previous = {sig: signal.getsignal(sig) for sig in TERMINATING}

    def on_signal(signum: int, frame: types.FrameType | None) -> None:
        name = signal.Signals(signum).name
        if ledger.undoing:
            log.warning("chaos: %s while cleaning up; finishing the cleanup first", name)
            return
        ledger.undoing = True
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    for sig in TERMINATING:
        signal.signal(sig, on_signal)
    atexit.register(ledger.close)
    try:
        yield ledger
    finally:
        try:
            ledger.close()
        finally:
            atexit.unregister(ledger.close)
            for sig, handler in previous.items():
                signal.signal(sig, _as_handler(handler))


def _as_handler(
    handler: Callable[[int, types.FrameType | None], object] | int | None,
) -> Callable[[int, types.FrameType | None], object] | int:
    return signal.SIG_DFL if handler is None else handler
