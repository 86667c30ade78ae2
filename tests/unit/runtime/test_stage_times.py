"""A record's time split into stages that follow each other, so they add up to its whole way.

First the clock alone, on a fake clock: which records are timed, what each
stage measures, what a failed batch or a one-at-a-time record leaves out.
Then a worker on the in-memory broker, at-least-once and exactly-once: per
record, the stage histograms sum to the end-to-end one within a
millisecond.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from pathlib import Path
from typing import NamedTuple

import pytest

from pipeline.metrics import Metrics
from pipeline.processor import Context
from pipeline.runtime.stage_times import END_TO_END, STAGES, StageClock
from pipeline.runtime.worker import EXIT_OK
from tests.unit.runtime.support import (
    OUTPUT,
    Done,
    Step,
    all_committed,
    new_broker,
    start_replica,
    until,
)
from tests.unit.stores.test_state_runtime import TOTALLER, publish


class FakeRecord(NamedTuple):
    offset: int
    timestamp: int


class Ticks:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def test_each_stage_is_the_time_between_two_moments_of_a_sampled_record() -> None:
    seen: list[tuple[str, float]] = []
    clock = Ticks(100.0)
    stages = StageClock(lambda stage, s: seen.append((stage, round(s, 6))), clock, every=4)
    records = [FakeRecord(offset, 99_000) for offset in range(10)]  # published at 99.0 s
    stages.fetched(records)  # at 100.0: offsets 0, 4, 8 are timed
    clock.now = 100.5
    first = stages.started(5)  # 0 and 4
    assert [t.offset for t in first] == [0, 4]
    clock.now = 101.0
    stages.handled(first)
    clock.now = 101.25
    stages.acknowledged(first, end_offset=6, committed=False)
    clock.now = 102.0
    stages.committed(5)  # not yet past the batch's end
    assert seen == []
    stages.committed(6)
    assert seen[:6] == [
        ("fetched", 1.0),
        ("queued", 0.5),
        ("handled", 0.5),
        ("acknowledged", 0.25),
        ("committed", 0.75),
        (END_TO_END, 3.0),
    ]
    assert len(seen) == 12  # offset 4 too
    # Offset 8 went one at a time (quarantine's careful pass): not timed.
    stages.skip_through(8)
    assert stages.started(9) == []


def test_exactly_once_commits_with_the_acknowledgement_and_a_failed_batch_is_dropped() -> None:
    seen: list[str] = []
    clock = Ticks(10.0)
    stages = StageClock(lambda stage, s: seen.append(stage), clock, every=1)
    stages.fetched([FakeRecord(0, 9_000), FakeRecord(1, 9_000)])
    batch = stages.started(0)
    stages.handled(batch)
    stages.acknowledged(batch, end_offset=1, committed=True)
    assert seen == [*STAGES, END_TO_END]

    async def failing() -> None:
        acks: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        lost = stages.started(1)
        stages.on_acknowledged(acks, lost, 2, committed=False)
        acks.set_exception(RuntimeError("not acknowledged"))
        await asyncio.sleep(0)
        acks.exception()

    asyncio.run(failing())
    stages.committed(2)
    assert len(seen) == 6, "a batch the broker did not take was timed"


def test_a_record_without_a_timestamp_has_no_start_so_no_fetched_or_end_to_end() -> None:
    seen: list[tuple[str, float]] = []
    clock = Ticks(50.0)
    stages = StageClock(lambda stage, s: seen.append((stage, s)), clock, every=1)
    stages.fetched([FakeRecord(0, -1), FakeRecord(1, 49_000)])
    batch = stages.started(1)
    clock.now = 51.0
    stages.handled(batch)
    stages.acknowledged(batch, end_offset=2, committed=True)
    untimed = [stage for stage, _ in seen[:4]]
    assert untimed == ["queued", "handled", "acknowledged", "committed"]
    assert [stage for stage, _ in seen[4:]] == [*STAGES, END_TO_END]
    assert max(s for _, s in seen) == 2.0  # the timed record's whole way, nothing near 56 years


def stage_sums(metrics: Metrics) -> dict[str, tuple[float, float]]:
    """stage → (count, sum) of pipeline_record_stage_seconds."""
    text = metrics.render()
    found = {}
    for stage in (*STAGES, END_TO_END):
        count = re.search(rf'pipeline_record_stage_seconds_count\{{stage="{stage}"\}} (\S+)', text)
        total = re.search(rf'pipeline_record_stage_seconds_sum\{{stage="{stage}"\}} (\S+)', text)
        assert count and total, f"no {stage} histogram"
        found[stage] = (float(count[1]), float(total[1]))
    return found


async def echo(step: Step, ctx: Context) -> Done:
    return Done(key=step.key, n=step.n)


@pytest.mark.parametrize("exactly_once", [False, True])
async def test_the_stage_histograms_add_up_to_the_end_to_end_one(
    tmp_path: Path, exactly_once: bool
) -> None:
    broker = new_broker()
    steps = [Step(key=f"k{n % 13}", n=n) for n in range(800)]
    await publish(broker, steps)
    processor = dataclasses.replace(
        TOTALLER, handler=echo, stores=(), outputs=(OUTPUT,), exactly_once=exactly_once
    )
    runtime, run = await start_replica(broker, processor, "r1", tmp_path)
    try:
        await until(lambda: all_committed(broker, "totaller"), "every step committed")
    finally:
        runtime.request_stop()
        assert await run == EXIT_OK
    sums = stage_sums(runtime.metrics)
    timed, whole = sums[END_TO_END]
    assert timed >= len(steps) // 16 - 3, "one record in 16 of each partition is timed"
    assert all(count == timed for count, _ in sums.values()), sums
    parts = sum(total for stage, (_, total) in sums.items() if stage != END_TO_END)
    assert abs(parts - whole) <= 0.001 * timed, (parts, whole)
    assert all(total >= 0 for _, total in sums.values()), sums
