"""The autoscaler's decisions and their reasons, from supervisors' status files.

`pipeline scale --status-file F` appends one JSON line per interval (lag,
rates, running and desired replicas, the reason). The console reads the
last fifteen minutes of each file it is given, per group.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

HISTORY_S = 15 * 60
TAIL_BYTES = 2_000_000


def read_decisions(files: list[Path], now: float | None = None) -> dict[str, list[dict[str, Any]]]:
    """Group → its decisions of the last fifteen minutes, oldest first; unreadable lines skipped."""
    since = (now if now is not None else time.time()) - HISTORY_S
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in files:
        try:
            with open(path, "rb") as source:
                source.seek(0, 2)
                size = source.tell()
                source.seek(max(0, size - TAIL_BYTES))
                tail = source.read().decode(errors="replace")
        except OSError:
            continue
        for line in tail.splitlines():
            try:
                status = json.loads(line)
            except json.JSONDecodeError:
                continue  # the first line of a tail, or one being written
            if isinstance(status, dict) and status.get("at", 0) >= since:
                found[str(status.get("group", path.stem))].append(status)
    return dict(found)
