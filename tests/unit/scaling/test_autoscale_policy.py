"""The scaling policy's invariants, and its behaviour in the simulator."""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.errors import ConfigError
from pipeline.scaling.autoscaler import Autoscaler
from pipeline.scaling.policy import Observation, ScalingPolicy, is_replay_group, recommend
from pipeline.scaling.simulator import (
    GroupModel,
    KedaScaler,
    OurScaler,
    Trace,
    evaluate_sim,
    simulate,
    spike,
    steady,
    step,
)

policies = st.builds(
    ScalingPolicy,
    min_replicas=st.integers(1, 4),
    max_replicas=st.integers(4, 32),
    target_drain_s=st.floats(1, 600),
    headroom=st.floats(1, 2),
)
observations = st.builds(
    Observation,
    at=st.floats(0, 1e6),
    lag=st.integers(0, 10**9),
    partitions=st.integers(1, 64),
    partitions_with_lag=st.integers(0, 64),
    input_rate=st.floats(0, 1e6),
    consume_rate=st.floats(0, 1e6),
    replicas=st.integers(0, 64),
)
capacities = st.one_of(st.none(), st.floats(1, 1e5))


@given(policies, observations, capacities)
def test_recommendations_stay_within_min_max_and_partitions(
    policy: ScalingPolicy, observation: Observation, capacity: float | None
) -> None:
    desired, why = recommend(policy, observation, capacity)
    ceiling = max(policy.min_replicas, min(policy.max_replicas, observation.partitions))
    assert policy.min_replicas <= desired <= ceiling
    assert why


@given(policies, observations, st.floats(1, 1e5), st.integers(0, 10**9))
def test_more_lag_never_asks_for_fewer_replicas(
    policy: ScalingPolicy, observation: Observation, capacity: float, extra_lag: int
) -> None:
    less, _ = recommend(policy, observation, capacity)
    more_lag = Observation(**{**observation.__dict__, "lag": observation.lag + extra_lag})
    more, _ = recommend(policy, more_lag, capacity)
    assert more >= less


@given(
    policies,
    st.integers(0, 10**6),
    st.floats(0, 1e5),
    st.integers(1, 64),
    capacities,
    st.integers(1, 32),
)
def test_a_constant_input_changes_direction_at_most_once(
    policy: ScalingPolicy,
    lag: int,
    input_rate: float,
    partitions: int,
    capacity: float | None,
    start: int,
) -> None:
    # The capacity is given, not learned: a constant lag with any replica count is not physical.
    scaler = Autoscaler(dataclasses.replace(policy, warmup_s=math.inf), start)
    scaler.per_replica_rate = capacity
    replicas = start
    seen = [replicas]
    for tick in range(200):
        observation = Observation(
            at=tick * 5.0,
            lag=lag,
            partitions=partitions,
            partitions_with_lag=partitions if lag else 0,
            input_rate=input_rate,
            consume_rate=input_rate,
            replicas=replicas,
        )
        replicas = scaler.decide(observation).desired
        seen.append(replicas)
    moves = [b - a for a, b in itertools.pairwise(seen) if b != a]
    assert sum(1 for a, b in itertools.pairwise(moves) if (a > 0) != (b > 0)) <= 1


def observation(at: float, lag: int, input_rate: float, replicas: int) -> Observation:
    return Observation(
        at=at,
        lag=lag,
        partitions=12,
        partitions_with_lag=12 if lag else 0,
        input_rate=input_rate,
        consume_rate=input_rate,
        replicas=replicas,
    )


def test_scales_up_at_once_and_down_only_after_the_window_while_lag_remains() -> None:
    policy = ScalingPolicy(
        max_replicas=12, scale_down_window_s=60, warmup_s=1000, initial_replica_rate=100
    )
    scaler = Autoscaler(policy, 1)
    up = scaler.decide(observation(0, 30_000, 400, 1))
    assert up.desired > 4 and up.reason.startswith("up to")
    # 600 behind at 100/s is not caught up (more than 500 and than 2 s of input),
    # but needs only 2 replicas: the long window decides.
    held = [scaler.decide(observation(t, 600, 100, up.desired)) for t in range(5, 60, 5)]
    assert all(d.desired == up.desired for d in held)
    assert "waits for the window" in held[-1].reason
    down = scaler.decide(observation(65, 600, 100, up.desired))
    assert down.desired == 2  # ceil(100 × 1.05 / 100), and 600 drains in 30 s
    assert down.reason.startswith("down to 2 after 60s")


def burst_then_caught_up(scaler: Autoscaler, start: float) -> list[int]:
    """Replicas for a burst at `start` (all 12 needed), then 24 seconds with no lag."""
    replicas = [scaler.decide(observation(start, 30_000, 400, 1)).desired]
    for t in range(1, 25):
        replicas.append(scaler.decide(observation(start + t, 0, 100, replicas[-1])).desired)
    return replicas


QUICK = 6
"""Index of the scale-down in burst_then_caught_up: caught up from +1, 5 s window."""
LONG = 21
"""... with the 20 s window instead: the burst's need leaves it after 21 s."""


def back_off_policy() -> ScalingPolicy:
    return ScalingPolicy(
        max_replicas=12, scale_down_window_s=20, caught_up_window_s=5, initial_replica_rate=100
    )


def test_once_caught_up_a_lower_need_held_for_the_short_window_is_trusted() -> None:
    scaler = Autoscaler(back_off_policy(), 1)
    replicas = burst_then_caught_up(scaler, 0)
    assert replicas[:QUICK] == [12] * QUICK
    assert replicas[QUICK:] == [2] * (25 - QUICK)  # ceil(100 × 1.05 / 100)


def test_a_quick_scale_down_undone_makes_the_next_ones_wait_the_long_window() -> None:
    scaler = Autoscaler(back_off_policy(), 1)
    assert burst_then_caught_up(scaler, 0).index(2) == QUICK
    # A burst 19 s after that scale-down undoes it: long windows for 4 × 20 s.
    assert burst_then_caught_up(scaler, 25).index(2) == LONG
    assert burst_then_caught_up(scaler, 50).index(2) == LONG
    assert burst_then_caught_up(scaler, 75).index(2) == LONG
    assert burst_then_caught_up(scaler, 105).index(2) == QUICK  # 25 + 80 has passed
    # Undone again: sixteen windows this time.
    assert burst_then_caught_up(scaler, 130).index(2) == LONG
    assert burst_then_caught_up(scaler, 420).index(2) == LONG
    assert burst_then_caught_up(scaler, 450).index(2) == QUICK  # 130 + 320 has passed


def test_a_quick_scale_down_that_stands_for_a_window_resets_the_back_off() -> None:
    scaler = Autoscaler(back_off_policy(), 1)
    burst_then_caught_up(scaler, 0)
    burst_then_caught_up(scaler, 25)  # undoes the quick scale-down at 6
    assert burst_then_caught_up(scaler, 105).index(2) == QUICK  # and that one stands
    for t in range(130, 200):
        scaler.decide(observation(t, 0, 100, 2))
    burst_then_caught_up(scaler, 200)
    burst_then_caught_up(scaler, 225)  # undoes the one at 206: the first in a row again
    assert burst_then_caught_up(scaler, 310).index(2) == QUICK  # 225 + 80, not + 320


def test_periodic_bursts_settle_instead_of_flapping() -> None:
    model = GroupModel(per_replica_rate=200, partitions=12, max_replicas=12)
    bursts = Trace("bursts", 1200, lambda t: 150 * (5 if t % 15 < 5 else 1), 0)
    result = simulate(bursts, OurScaler(ScalingPolicy(max_replicas=12), 1, interval_s=1), model)
    moves = [b - a for a, b in itertools.pairwise(result.replicas) if b != a]
    direction_changes = sum(1 for a, b in itertools.pairwise(moves) if (a > 0) != (b > 0))
    # 80 bursts; a quick scale-down is tried three times (backing off 4×, 16×,
    # 64× the window), each time undone by the next burst.
    assert direction_changes <= 7


def test_capacity_is_learned_only_while_saturated_and_stable() -> None:
    policy = ScalingPolicy(warmup_s=10, saturation_lag=500)
    scaler = Autoscaler(policy, 2)
    busy = Observation(0, 5000, 12, 12, input_rate=900, consume_rate=600, replicas=2)
    scaler.decide(busy)
    assert scaler.per_replica_rate is None  # the size was just seen for the first time
    scaler.decide(Observation(**{**busy.__dict__, "at": 5}))
    assert scaler.per_replica_rate is None  # not warmed up
    scaler.decide(Observation(**{**busy.__dict__, "at": 10}))
    assert scaler.per_replica_rate is None  # (5, 10] began inside the warm-up
    scaler.decide(Observation(**{**busy.__dict__, "at": 15}))
    assert scaler.per_replica_rate == pytest.approx(300)  # one window of 5 saturated seconds
    idle = Observation(20, 0, 12, 0, input_rate=100, consume_rate=100, replicas=2)
    scaler.decide(idle)
    assert scaler.per_replica_rate == pytest.approx(300)  # idle rates say nothing


def test_replay_and_backfill_groups_are_not_the_live_group() -> None:
    assert is_replay_group("replay.orders-backfill")
    assert is_replay_group("staging.replay.orders")
    assert not is_replay_group("enrich_orders")


def test_policies_that_cannot_work_are_refused() -> None:
    with pytest.raises(ConfigError):
        ScalingPolicy(min_replicas=3, max_replicas=2)
    with pytest.raises(ConfigError):
        ScalingPolicy(target_drain_s=0)


@pytest.mark.parametrize("trace", [step(150), spike(150)], ids=lambda t: t.name)
def test_in_the_simulator_ours_drains_faster_than_kedas_formula(trace) -> None:  # type: ignore[no-untyped-def]
    model = GroupModel(per_replica_rate=200, partitions=12, max_replicas=12)
    ours = evaluate_sim(simulate(trace, OurScaler(ScalingPolicy(max_replicas=12), 1), model))
    keda = evaluate_sim(simulate(trace, KedaScaler(200 * 30, model), model))
    assert ours.time_to_drain_s is not None and keda.time_to_drain_s is not None
    assert ours.time_to_drain_s <= 0.7 * keda.time_to_drain_s
    assert ours.direction_changes <= 1


def test_a_steady_load_keeps_the_ideal_size() -> None:
    model = GroupModel(per_replica_rate=200, partitions=12)
    result = evaluate_sim(simulate(steady(150), OurScaler(ScalingPolicy(), 1), model))
    assert result.replica_seconds_vs_ideal == 1.0
    assert result.direction_changes == 0


def test_a_per_replica_rate_near_zero_asks_for_the_most_not_an_overflow() -> None:
    # Found by hypothesis: lag / 2e-309 overflows to infinity, which has no ceiling.
    observation = Observation(
        at=10.0,
        lag=500,
        partitions=4,
        partitions_with_lag=4,
        input_rate=1e-300,
        consume_rate=1e-300,
        replicas=1,
    )
    desired, _ = recommend(ScalingPolicy(max_replicas=8), observation, 2.2e-309)
    assert desired == 4
