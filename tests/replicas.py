"""Worker replicas as real OS processes, and ways to wait for them."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from pipeline.scaling.worker_process import WorkerProcess


class Replica(WorkerProcess):
    """A worker process whose failures become test failures with its log tail."""

    def __init__(
        self, processor: str, replica_id: str, env: dict[str, str], log_dir: Path, *extra: str
    ):
        super().__init__(processor, replica_id, env, log_dir / f"{replica_id}.log", *extra)

    def metric(self, name: str) -> float:
        return self.metrics().get(name, 0.0)

    def wait_ready(self, timeout_s: float = 60) -> None:
        try:
            super().wait_ready(timeout_s)
        except RuntimeError as exc:
            raise AssertionError(str(exc)) from None

    def stop(self, grace_s: float = 60) -> int:
        """SIGTERM and wait; a worker that does not exit in time fails with its log tail."""
        self.signal(signal.SIGTERM)
        try:
            return self.wait(grace_s)
        except subprocess.TimeoutExpired:
            # Its tasks' stacks say where it is stuck (pipeline.resilience.tasks).
            self.signal(signal.SIGUSR1)
            time.sleep(1)
            raise AssertionError(
                f"{self.replica_id} still running {grace_s}s after SIGTERM:\n{self.tail(200)}"
            ) from None


def poll_until(condition, timeout_s: float, interval_s: float = 0.25, what: str = "condition"):  # type: ignore[no-untyped-def]
    """Poll `condition()` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
