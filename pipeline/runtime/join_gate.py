"""The replicas of one scale step join their group together: one rebalance, not one each.

On the eager protocol every join stops every member until all have
rejoined. Replicas started together still reach the group apart: one
imports faster, another opens its tables longer. Each arrival then starts
a rebalance of its own, and a 1 → 4 step stopped the group three times
(issue 20). So a replica started for a step gets ready (tables, producer,
consumer) and then waits at a gate, a file the supervisor creates once
every replica of the step has arrived (or one died, or the wait ran out);
they then send their JoinGroup within a poll of each other, and the
coordinator, already waiting for the old members to rejoin, takes them all
in one generation.

A file, not a socket: the supervisor and its replicas share a folder
already (their logs), and a replica started by hand simply has no gate.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

log = logging.getLogger("pipeline.join_gate")

WAIT_S = 30.0
"""A replica joins anyway after this long: a lost supervisor must not keep it out."""
POLL_S = 0.02
"""How often a waiting replica looks at its gate: the spread of the step's JoinGroups."""


def is_open(gate: Path) -> bool:
    """One stat of a local file: microseconds, not worth a thread."""
    return gate.exists()


def arrival_marker(gate: Path, replica_id: str) -> Path:
    return gate.with_name(f"{gate.name}.{replica_id}.arrived")


async def wait_at(
    gate: Path, replica_id: str, stop: asyncio.Event, timeout_s: float = WAIT_S
) -> None:
    """Say this replica is ready to join; wait for the gate to open (or `stop`, or the timeout)."""
    arrival_marker(gate, replica_id).touch()
    deadline = time.monotonic() + timeout_s
    while not is_open(gate):
        if stop.is_set():
            return
        if time.monotonic() >= deadline:
            log.warning(
                "the join gate %s did not open within %.0fs; joining the group now "
                "(the step may cost more than one rebalance)",
                gate,
                timeout_s,
            )
            return
        await asyncio.sleep(POLL_S)
    log.info("join gate open: joining the group with the rest of the step")


class JoinGate:
    """The supervisor's side: one gate per scale step, opened when every replica has arrived."""

    def __init__(self, path: Path, replica_ids: list[str]) -> None:
        self.path = path
        self.replica_ids = replica_ids
        self.created_at = time.monotonic()
        path.parent.mkdir(parents=True, exist_ok=True)

    def admit(self, replica_ids: list[str]) -> None:
        """More replicas for a gate not open yet: the wait starts again for them."""
        self.replica_ids.extend(replica_ids)
        self.created_at = time.monotonic()

    def age_s(self) -> float:
        return time.monotonic() - self.created_at

    def arrived(self) -> list[str]:
        return [rid for rid in self.replica_ids if arrival_marker(self.path, rid).exists()]

    def should_open(self, gone: set[str], timeout_s: float = WAIT_S) -> bool:
        """Every replica is at the gate or gone (died, stopped), or waiting longer is pointless."""
        waiting_for = set(self.replica_ids) - set(self.arrived()) - gone
        return not waiting_for or self.age_s() >= timeout_s

    def open(self) -> None:
        self.path.touch()
