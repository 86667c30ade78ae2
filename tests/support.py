"""Helpers for integration tests: create topics, read them back, run the CLI."""

from __future__ import annotations

import os
import subprocess
import sys

from pipeline.reading.reader import read_all
from pipeline.scaling.worker_process import PIPELINE

__all__ = ["PIPELINE", "log_progress", "read_all", "run_cli"]


THROWAWAY_STOP_S = 3.0
"""How long a test cluster, deleted right after, gets to stop on SIGTERM before SIGKILL:
its controlled shutdown keeps nothing anyone reads (it cost 17 s at the end of the suite)."""


def log_progress(message: str) -> None:
    print(f"[kafka] {message}", file=sys.stderr)


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    input_text: str | None = None,
    timeout: float = 180,
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [PIPELINE, *args],
        capture_output=True,
        text=True,
        env=full_env,
        input=input_text,
        timeout=timeout,
        check=False,
    )
