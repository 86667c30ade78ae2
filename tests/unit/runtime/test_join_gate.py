"""A step's replicas wait at one gate and pass it together; nothing keeps one out for good."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from pipeline.runtime.join_gate import JoinGate, arrival_marker, wait_at


def test_replicas_pass_the_gate_together_once_the_last_has_arrived(tmp_path: Path) -> None:
    gate = JoinGate(tmp_path / "gates" / "step-1", ["p-1", "p-2", "p-3"])
    passed: dict[str, float] = {}

    async def replica(replica_id: str, ready_after_s: float) -> None:
        await asyncio.sleep(ready_after_s)  # tables, producer, consumer
        await wait_at(gate.path, replica_id, asyncio.Event(), timeout_s=10)
        passed[replica_id] = time.monotonic()

    async def supervisor() -> None:
        deadline = time.monotonic() + 10
        while not gate.should_open(gone=set()):
            assert time.monotonic() < deadline, f"only {gate.arrived()} arrived"
            await asyncio.sleep(0.01)
        assert sorted(gate.arrived()) == ["p-1", "p-2", "p-3"]
        gate.open()

    async def main() -> None:
        await asyncio.gather(
            replica("p-1", 0.0), replica("p-2", 0.3), replica("p-3", 0.6), supervisor()
        )

    asyncio.run(main())
    assert max(passed.values()) - min(passed.values()) < 0.2  # not 0.6 apart


def test_a_replica_that_died_does_not_hold_the_gate(tmp_path: Path) -> None:
    gate = JoinGate(tmp_path / "step-2", ["p-1", "p-2"])
    arrival_marker(gate.path, "p-1").touch()
    assert not gate.should_open(gone=set())
    assert gate.should_open(gone={"p-2"})


def test_a_gate_never_opened_lets_the_replica_join_after_the_wait(tmp_path: Path) -> None:
    gate = tmp_path / "step-3"
    started = time.monotonic()
    asyncio.run(wait_at(gate, "p-1", asyncio.Event(), timeout_s=0.2))
    assert 0.2 <= time.monotonic() - started < 5
    assert arrival_marker(gate, "p-1").exists()


def test_a_stop_while_waiting_releases_the_replica(tmp_path: Path) -> None:
    async def main() -> float:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.1, stop.set)
        started = time.monotonic()
        await wait_at(tmp_path / "step-4", "p-1", stop, timeout_s=30)
        return time.monotonic() - started

    assert asyncio.run(main()) < 5


def test_the_supervisor_gives_up_waiting_after_the_timeout(tmp_path: Path) -> None:
    gate = JoinGate(tmp_path / "step-5", ["p-1"])
    assert not gate.should_open(gone=set(), timeout_s=30)
    assert gate.should_open(gone=set(), timeout_s=0)


def test_a_step_taken_before_the_last_one_joined_waits_at_the_same_gate(tmp_path: Path) -> None:
    gate = JoinGate(tmp_path / "step-6", ["p-1"])
    arrival_marker(gate.path, "p-1").touch()
    gate.admit(["p-2", "p-3"])  # 1 → 2, then 2 → 4 a second later: one rebalance
    assert not gate.should_open(gone=set())
    for replica_id in ("p-2", "p-3"):
        arrival_marker(gate.path, replica_id).touch()
    assert gate.should_open(gone=set())
