"""How benchmarks start our worker on the peers' enrichment job."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
PIPELINE = str(Path(sys.executable).parent / "pipeline")


def worker_command(bootstrap: str, *extra: str) -> list[str]:
    """`pipeline worker` running bench.peers.ours's `enrich` processor."""
    return [
        PIPELINE,
        "worker",
        "enrich",
        "--processors-module",
        "bench.peers.ours",
        "--bootstrap",
        bootstrap,
        "--log-level",
        "WARNING",
        *extra,
    ]


def job_env(db_path: Path, source: str, output: str, group: str, **more: str) -> dict[str, str]:
    """Environment of a contestant: where the customers are, which topics, which group."""
    return {
        **os.environ,
        "PEERS_DB": str(db_path),
        "PEERS_INPUT": source,
        "PEERS_OUTPUT": output,
        "PEERS_GROUP": group,
        "PYTHONPATH": str(ROOT),
        **more,
    }
