"""Waiting for a starting cluster: until its metadata lists every broker, or a node dies."""

from __future__ import annotations

import time
from pathlib import Path

from pipeline.dev.processes import log_tail, pid_alive, port_open
from pipeline.errors import InfraError
from pipeline.settings import PipelineSettings


def wait_for_metadata(
    bootstrap: str,
    brokers: int,
    timeout_s: float,
    log_files: list[Path] | None = None,
    pids: list[int | None] | None = None,
    settings: PipelineSettings | None = None,
) -> None:
    """Block until the cluster lists `brokers` live brokers in its metadata.

    Gives up at once, with the log tails, if a node process has exited.
    `settings` carry the credentials of a secured cluster.
    """
    from pipeline.kafka.aiokafka.probe import live_broker_count

    deadline = time.monotonic() + timeout_s
    last_error = "no answer yet"
    ports = [int(address.rsplit(":", 1)[1]) for address in bootstrap.split(",")]
    while time.monotonic() < deadline:
        dead = [pid for pid in pids or [] if not pid_alive(pid)]
        if dead:
            tails = "\n".join(f"--- {path} ---\n{log_tail(path)}" for path in log_files or [])
            raise InfraError(
                f"a Kafka node exited during start-up (pid {', '.join(map(str, dead))}). "
                f"Last lines of the broker logs:\n{tails}"
            )
        if not any(port_open(port) for port in ports):
            last_error = "no broker port accepts connections yet"
            time.sleep(0.3)
            continue
        try:
            seen = live_broker_count(bootstrap, settings)
            if seen >= brokers:
                return
            last_error = f"{seen} of {brokers} brokers registered"
        except Exception as exc:  # noqa: BLE001 - reported below with the log tail
            last_error = f"{type(exc).__name__}: {exc}"
        time.sleep(0.5)
    tails = "\n".join(f"--- {path} ---\n{log_tail(path)}" for path in log_files or [])
    raise InfraError(
        f"the cluster at {bootstrap} did not answer metadata requests within "
        f"{timeout_s:.0f}s ({last_error}). Last lines of the broker logs:\n{tails}"
    )
