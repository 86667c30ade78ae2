"""A `pipeline worker` replica as a child process, watched through its health port.

What the demo, the local supervisor and the tests need from a replica:
start it, know when it is ready, read its metrics, and stop it the way an
orchestrator would (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from pipeline.dev.processes import free_ports
from pipeline.paths import project_dir

PIPELINE = str(Path(sys.executable).parent / "pipeline")


class WorkerProcess:
    """One `pipeline worker` replica as a child process, started at construction.

    Tests and demos need replicas that are real processes (a kill -9 must
    mean what it means in production) yet are easy to watch: each gets a free
    health port, its output goes to `log_path`, and `wait_ready`, `metrics`,
    `signal` and `stop` ask or tell it what an orchestrator would.
    """

    def __init__(
        self,
        processor: str,
        replica_id: str,
        env: dict[str, str],
        log_path: Path,
        *extra_args: str,
    ) -> None:
        self.processor = processor
        self.replica_id = replica_id
        self.port = free_ports(1)[0]
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in wait()
        self.process = subprocess.Popen(
            [
                PIPELINE,
                "worker",
                processor,
                "--replica-id",
                replica_id,
                "--health-port",
                str(self.port),
                *extra_args,
            ],
            cwd=project_dir(),
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}{path}", timeout=2
            ) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metrics(self) -> dict[str, float]:
        """Every series, summed over labels: `pipeline_cache_hits_total` → value."""
        try:
            _, text = self.get("/metrics")
        except OSError:
            return {}
        return parse_metrics(text)

    def is_ready(self) -> bool:
        try:
            return self.get("/readyz")[0] == 200
        except OSError:
            return False

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"{self.replica_id} exited: {self.tail()}")
            if self.is_ready():
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.replica_id} not ready in {timeout_s}s: {self.tail()}")

    def signal(self, sig: int) -> None:
        if self.running:
            self.process.send_signal(sig)

    def wait(self, timeout_s: float = 60) -> int:
        try:
            return self.process.wait(timeout=timeout_s)
        finally:
            if self.process.returncode is not None:
                self._log.close()

    def stop(self, grace_s: float = 60) -> int:
        """SIGTERM, and SIGKILL if it has not exited after `grace_s`.

        SIGCONT follows the SIGTERM: a replica stopped with SIGSTOP would
        otherwise hold its SIGTERM until the grace ran out.
        """
        self.signal(signal.SIGTERM)
        self.signal(signal.SIGCONT)
        try:
            return self.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            return self.wait(10)

    def tail(self, lines: int = 30) -> str:
        if not self._log.closed:
            self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def parse_metrics(text: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name = head.split("{", 1)[0]
        totals[name] = totals.get(name, 0.0) + float(value)
    return totals
