"""When the supervisor tells the policy a step is still settling, and when it stops saying so."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, cast

from pipeline.kafka.port import GroupDescription, GroupMember
from pipeline.runtime.join_gate import JoinGate
from pipeline.scaling.lag import LagMonitor
from pipeline.scaling.policy import ScalingPolicy
from pipeline.scaling.supervisor import SETTLE_LIMIT_S, Supervisor
from pipeline.settings import PipelineSettings


class DescribedGroup:
    """Answers describe_group like the lag monitor, with the state and members given."""

    def __init__(self, state: str, members: int) -> None:
        self.description = GroupDescription(
            "g",
            state,
            tuple(GroupMember(f"m{i}", "c", "h", ()) for i in range(members)),
        )

    async def describe_group(self) -> GroupDescription:
        return self.description


def supervisor(tmp_path: Path, workers: int, manage_processes: bool = True) -> Supervisor:
    made = Supervisor(
        settings=PipelineSettings(bootstrap_servers="127.0.0.1:9"),
        processor="p",
        group="g",
        topic="t",
        policy=ScalingPolicy(),
        env={},
        log_dir=tmp_path,
        manage_processes=manage_processes,
    )
    made.workers = {f"p-{i}": cast(Any, object()) for i in range(workers)}
    made.stepped_at = time.monotonic()
    return made


def settling(made: Supervisor, state: str, members: int) -> bool:
    return asyncio.run(made._settling(cast(LagMonitor, DescribedGroup(state, members))))


def test_a_shut_gate_or_a_worker_still_leaving_is_a_step_under_way(tmp_path: Path) -> None:
    made = supervisor(tmp_path, 3)
    made.gates.append(JoinGate(tmp_path / "step-1", ["p-1", "p-2"]))
    assert settling(made, "Stable", 3)
    made.gates.clear()
    made.draining.append(cast(Any, object()))
    assert settling(made, "Stable", 3)


def test_settled_once_the_group_is_stable_with_every_worker_in_it(tmp_path: Path) -> None:
    made = supervisor(tmp_path, 3)
    assert settling(made, "PreparingRebalance", 3)
    assert settling(made, "CompletingRebalance", 3)
    assert settling(made, "Stable", 2)  # one worker has not joined yet
    assert not settling(made, "Stable", 3)


def test_a_step_that_never_settles_is_taken_as_settled_after_the_limit(tmp_path: Path) -> None:
    made = supervisor(tmp_path, 3)
    made.stepped_at = time.monotonic() - SETTLE_LIMIT_S - 1
    assert not settling(made, "PreparingRebalance", 2)


def test_recommending_only_it_follows_the_group_s_state(tmp_path: Path) -> None:
    made = supervisor(tmp_path, 0, manage_processes=False)
    made.stepped_at = -1e9  # it starts nothing itself: its own steps do not matter
    assert settling(made, "PreparingRebalance", 4)
    assert not settling(made, "Stable", 4)
