"""How one replica is run: its identity, its bounds and deadlines, what it listens on.

Per process, unlike the processor's declaration (the same for every replica)
and the settings (the same for every process of a deployment).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.runtime import defaults


@dataclass(frozen=True)
class WorkerOptions:
    replica_id: str
    static_membership: bool = False
    commit_interval_s: float = 1.0
    drain_deadline_s: float = defaults.DRAIN_DEADLINE_S
    """SIGTERM and revocation: how long work in hand may take to finish."""
    max_in_flight_records: int = defaults.MAX_IN_FLIGHT_RECORDS
    """Records held in memory (queued, being handled or awaiting acks), all partitions.

    Above it nothing is fetched. With fetch_partition_bytes (one buffered fetch
    per partition at most), what bounds a worker's memory whatever the backlog.
    """
    fetch_partition_bytes: int = defaults.FETCH_PARTITION_BYTES
    """Also sizes a whole fetch response: FETCH_RESPONSE_PARTITIONS times this."""
    liveness_stall_s: float = defaults.LIVENESS_STALL_S
    session_timeout_ms: int = 10_000
    health_port: int | None = None
    health_host: str = "127.0.0.1"
    """0.0.0.0 in a container, where probes come from outside."""
    handle_signals: bool = True
    """SIGTERM and SIGINT drain and stop; off where the caller owns them (tests, harnesses)."""
    cache_dir: Path | None = None
    """Where the tables' caches live; None: `caches` in the state folder (pipeline.paths)."""
    store_dir: Path | None = None
    """Where the stores' local copies live, a folder per group; None: `stores` in the state
    folder. Shared by the replicas of one machine, so a partition that moves between them
    restores only its tail."""
    join_gate: Path | None = None
    """Join the group only when this file exists (pipeline.runtime.join_gate)."""
