"""The flood guard judges records in the order they were handled, whatever the batches.

Against an oracle written from the definition (the last `window` outcomes,
a list, no running counts), and through the real runtime on the in-memory
broker with batch sizes drawn by hypothesis: one failure in seven never
pauses anything; a flood pauses within one window.
"""

from __future__ import annotations

import dataclasses
from collections import deque

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.catalogue import TopicSpec
from pipeline.processor import Context, PermanentError, Processor
from pipeline.resilience.flood_guard import FloodGuard, FloodGuardPolicy
from pipeline.testing import TestPipeline
from tests.unit.runtime.support import OUTPUT, SOURCE, Done, Step


def oracle_trips(outcomes: list[bool], policy: FloodGuardPolicy) -> list[int]:
    """Indexes at which the guard must pause, by the definition; a pause empties the window."""
    window: deque[bool] = deque()
    trips = []
    for index, dead in enumerate(outcomes):
        while dead:
            judged = ([*window, True])[-policy.window :]
            if len(judged) >= policy.minimum and sum(judged) / len(judged) > policy.max_share:
                trips.append(index)
                window.clear()
                continue
            break
        window.append(dead)
    return trips


def guard_trips(outcomes: list[bool], policy: FloodGuardPolicy) -> list[int]:
    """What the guard does, driven as the batch handler drives it."""
    guard = FloodGuard(policy)
    trips = []
    for index, dead in enumerate(outcomes):
        while dead and guard.trips_on_one_more():
            trips.append(index)
            guard.reset()
        guard.record(dead)
    return trips


policies = st.builds(
    lambda window, minimum_share, share: FloodGuardPolicy(
        max_share=share, window=window, minimum=max(2, int(window * minimum_share))
    ),
    window=st.integers(2, 60),
    minimum_share=st.floats(0.0, 1.0),
    share=st.floats(0.05, 1.0),
)


@given(outcomes=st.lists(st.booleans(), max_size=400), policy=policies)
def test_the_guard_trips_exactly_where_the_definition_says(
    outcomes: list[bool], policy: FloodGuardPolicy
) -> None:
    assert guard_trips(outcomes, policy) == oracle_trips(outcomes, policy)


def test_one_failure_in_seven_never_trips_the_default_guard() -> None:
    outcomes = [n % 7 == 0 for n in range(10_000)]
    assert guard_trips(outcomes, FloodGuardPolicy()) == []


def test_a_flood_trips_once_enough_records_were_judged() -> None:
    policy = FloodGuardPolicy(window=100, max_share=0.5, minimum=20)
    assert guard_trips([True] * 19, policy) == []  # too few to judge
    assert guard_trips([True] * 20, policy) == [19]
    # 40 successes then failures: 41 dead of 81 is the first share over a half; the
    # pause empties the window, and 20 more failures in a row trip it again.
    assert guard_trips([False] * 40 + [True] * 60, policy) == [80, 99]


@pytest.mark.parametrize(
    "policy",
    [
        {"max_share": 0.0},
        {"max_share": 1.5},
        {"window": 10, "minimum": 11},
        {"minimum": 1},
        {"pause_s": 0},
    ],
)
def test_a_policy_that_could_not_work_is_refused(policy: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="FloodGuardPolicy"):
        FloodGuardPolicy(**policy)  # type: ignore[arg-type]


ONE_PARTITION = dataclasses.replace(SOURCE, name="flood-steps", partitions=1)
SIX_PARTITIONS = dataclasses.replace(SOURCE, name="payments", partitions=6)


async def fails_when_told(step: Step, ctx: Context) -> Done:
    if step.mode == "permanent":
        raise PermanentError(f"step {step.n} is refused")
    return Done(key=step.key, n=step.n)


def processor_on(
    source: TopicSpec[Step], batch_records: int, policy: FloodGuardPolicy | None
) -> Processor[Step]:
    return Processor(
        "flood",
        source,
        fails_when_told,
        outputs=(OUTPUT,),
        batch_records=batch_records,
        flood_guard=policy,
    )


def windows_over(outcomes: list[bool], policy: FloodGuardPolicy) -> list[list[bool]]:
    """Every window the guard judges when it sees no pause: the last `window` up to each."""
    return [
        outcomes[max(0, end + 1 - policy.window) : end + 1]
        for end in range(len(outcomes))
        if end + 1 >= policy.minimum
    ]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    outcomes=st.lists(st.booleans(), min_size=1, max_size=300),
    batch_records=st.integers(1, 300),
    window=st.integers(10, 80),
    share=st.sampled_from([0.3, 0.5, 0.8]),
)
async def test_in_the_runtime_the_batch_size_changes_nothing(
    outcomes: list[bool], batch_records: int, window: int, share: float
) -> None:
    policy = FloodGuardPolicy(max_share=share, window=window, minimum=window // 3, pause_s=0.001)
    processor = processor_on(ONE_PARTITION, batch_records, policy)
    steps = [
        Step(key=f"k{n % 5}", n=n, mode="permanent" if dead else "")
        for n, dead in enumerate(outcomes)
    ]
    async with TestPipeline(processor) as pipeline:
        await pipeline.publish(ONE_PARTITION, steps)
        await pipeline.processed(timeout_s=30)
        pauses = pipeline.metrics.total("flood_guard_pauses")
        dead = sorted(letter.source_offset for letter in pipeline.dead_letters())
    assert dead == [n for n, failed in enumerate(outcomes) if failed]  # none lost to a pause
    assert pauses == len(oracle_trips(outcomes, policy))
    judged = windows_over(outcomes, policy)
    if all(sum(w) / len(w) <= share for w in judged if w[-1]):
        assert pauses == 0
    full = [w for w in judged if len(w) == window and sum(w) / len(w) > share]
    if full and window // 3 <= share * window:
        assert pauses >= 1


async def test_one_failure_in_seven_over_6000_payments_pauses_nothing_and_commits_all() -> None:
    processor = processor_on(SIX_PARTITIONS, 500, FloodGuardPolicy())
    steps = [
        Step(key=f"acct-{n % 97}", n=n, mode="permanent" if n % 7 == 0 else "") for n in range(6000)
    ]
    async with TestPipeline(processor) as pipeline:
        await pipeline.publish(SIX_PARTITIONS, steps)
        await pipeline.processed(timeout_s=20)  # every record committed
        assert pipeline.metrics.total("flood_guard_pauses") == 0
        assert pipeline.metrics.total("loop_stalls") == 0
        refused = sorted(int(letter.error_message.split()[1]) for letter in pipeline.dead_letters())
        outputs = pipeline.outputs(OUTPUT)
    assert refused == [n for n in range(6000) if n % 7 == 0]
    assert sorted(done.n for done in outputs) == [n for n in range(6000) if n % 7]


async def test_with_the_guard_off_a_flood_is_dead_lettered_without_a_pause() -> None:
    processor = processor_on(ONE_PARTITION, 100, None)
    steps = [Step(key="k", n=n, mode="permanent") for n in range(300)]
    async with TestPipeline(processor) as pipeline:
        await pipeline.publish(ONE_PARTITION, steps)
        await pipeline.processed(timeout_s=20)
        assert pipeline.metrics.total("flood_guard_pauses") == 0
        assert len(pipeline.dead_letters()) == 300
