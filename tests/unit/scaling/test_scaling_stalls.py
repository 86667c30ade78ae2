"""Issue 20's rules: hysteresis at the integer boundary, steps that know they stall the group,
and a simulator in which rebalances cost time and rates are noisy."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.scaling.autoscaler import DOWN_MARGIN, UP_MARGIN, Autoscaler
from pipeline.scaling.policy import Observation, ScalingPolicy
from pipeline.scaling.simulator import (
    GroupModel,
    OurScaler,
    SimResult,
    Trace,
    noisy,
    simulate,
    steady,
    step,
)
from tests.unit.scaling.test_autoscale_policy import observation

CAPACITY = 185.0
"""One replica's events/s, as the real step of bench/autoscale.py measured it."""


def seen(
    at: float, input_rate: float, replicas: int, lag: int = 0, settling: bool = False
) -> Observation:
    return dataclasses.replace(observation(at, lag, input_rate, replicas), settling=settling)


def scaler_at(replicas: int, **policy: float) -> Autoscaler:
    scaler = Autoscaler(
        ScalingPolicy(max_replicas=12, initial_replica_rate=CAPACITY, **policy), replicas
    )
    return scaler


def direction_changes(result: SimResult, since: float = 0.0) -> int:
    moves = [
        after - before
        for t, before, after in zip(
            result.times[1:], result.replicas[:-1], result.replicas[1:], strict=True
        )
        if after != before and t >= since
    ]
    return sum(1 for a, b in itertools.pairwise(moves) if (a > 0) != (b > 0))


# -- hysteresis ----------------------------------------------------------------------------


def test_a_need_just_above_the_replicas_holds_and_one_clearly_above_scales_up_at_once() -> None:
    scaler = scaler_at(3)
    # 3 × 185 / 1.05 = 529/s fits three; 5% more is a need of 3.15, inside the margin.
    held = scaler.decide(seen(0, 529 * 1.05, 3))
    assert held.desired == 3 and held.reason.startswith("hold 3")
    up = scaler.decide(seen(1, 529 * (1 + UP_MARGIN) * 1.02, 3))
    assert up.desired == 4 and up.reason.startswith("up to 4")


def test_the_quick_scale_down_keeps_a_margin_over_the_input() -> None:
    # Three replicas of 185/s leave 12% over 497/s: headroom and margin fit, 4 → 3.
    scaler = scaler_at(4, caught_up_window_s=5)
    decisions = [scaler.decide(seen(t, 497, 4)) for t in range(0, 7)]
    assert [d.desired for d in decisions] == [4] * 5 + [3] * 2
    assert "caught up" in decisions[5].reason
    # At 520/s three would leave 6.7%: below headroom (5%) plus margin: stay at 4.
    assert 3 * CAPACITY < 520 * 1.05 * (1 + DOWN_MARGIN)
    scaler = scaler_at(4, caught_up_window_s=5)
    decisions = [scaler.decide(seen(t, 520, 4)) for t in range(0, 60)]
    assert {d.desired for d in decisions} == {4}


def test_a_five_percent_wobble_at_the_boundary_never_flips_the_count() -> None:
    scaler = scaler_at(4, caught_up_window_s=5, scale_down_window_s=20)
    replicas = 4
    history = []
    for tick in range(600):
        wobble = 1 + 0.05 * (1 if tick % 2 else -1)
        capacity_wobble = 1 - 0.05 * (1 if tick % 3 else -1)
        scaler.per_replica_rate = CAPACITY * capacity_wobble
        replicas = scaler.decide(seen(tick, 497 * wobble, replicas)).desired
        history.append(replicas)
    moves = [b - a for a, b in itertools.pairwise(history) if b != a]
    assert len(moves) <= 1  # at most the one step down to 3, never back


# -- a step's stall ---------------------------------------------------------------------------


def test_the_lag_a_step_s_stall_explains_is_not_new_demand() -> None:
    scaler = scaler_at(4)
    # Four replicas started for 500/s; the rebalance stops output for 4 s: 2,000 more lag.
    for t in range(5):
        decision = scaler.decide(seen(t, 500, 4, lag=500 * t, settling=True))
        assert decision.desired == 4, decision.reason
    assert "the step's stall" in decision.reason
    # Lag far beyond what the stall explains is demand: scale up, settling or not.
    beyond = scaler.decide(seen(5, 500, 4, lag=60_000, settling=True))
    assert beyond.desired > 4


def test_nothing_is_scaled_down_while_a_step_settles() -> None:
    scaler = scaler_at(6, caught_up_window_s=0)
    assert scaler.decide(seen(0, 100, 6, settling=True)).desired == 6
    assert scaler.decide(seen(1, 100, 6)).desired < 6


def test_capacity_is_not_learned_from_a_stall_and_warms_up_again_after_it() -> None:
    policy = ScalingPolicy(warmup_s=10, saturation_lag=500)
    scaler = Autoscaler(policy, 2)
    for t in range(0, 30, 5):
        scaler.decide(Observation(t, 5000, 12, 12, 900, 50, replicas=2, settling=True))
    assert scaler.per_replica_rate is None  # 25/s per replica during a stall: not a capacity
    busy = Observation(30, 5000, 12, 12, 900, 600, replicas=2)
    for t in (30, 35, 40):
        scaler.decide(Observation(**{**busy.__dict__, "at": t}))
        assert scaler.per_replica_rate is None  # settled at 30: warming up until 40
    scaler.decide(Observation(**{**busy.__dict__, "at": 45}))
    assert scaler.per_replica_rate == pytest.approx(300)


def test_a_group_keeping_up_never_lowers_its_capacity_one_falling_short_does() -> None:
    policy = ScalingPolicy(warmup_s=0, saturation_lag=500, initial_replica_rate=170)
    scaler = Autoscaler(policy, 4)
    # Four replicas keep up with 500/s: lag stays above saturation_lag (records in flight),
    # and 125/s each is what they were asked, not what they can do.
    for t in range(0, 20):
        scaler.decide(Observation(t, 600, 12, 12, input_rate=500, consume_rate=500, replicas=4))
    assert scaler.per_replica_rate == 170
    # Doing more than the estimate over a window raises it, keeping up or not.
    for t in range(20, 26):
        scaler.decide(Observation(t, 2000, 12, 12, input_rate=500, consume_rate=800, replicas=4))
    raised = scaler.per_replica_rate
    assert raised is not None and raised > 170
    # Falling clearly short of the input lowers it.
    for t in range(26, 32):
        scaler.decide(Observation(t, 3000, 12, 12, input_rate=800, consume_rate=480, replicas=4))
    assert scaler.per_replica_rate < raised


def test_a_scale_down_trusts_the_lowest_recent_capacity_measurement() -> None:
    def scaler() -> Autoscaler:
        policy = ScalingPolicy(
            max_replicas=12, warmup_s=0, caught_up_window_s=5, initial_replica_rate=182
        )
        return Autoscaler(policy, 4)

    # Believing 182/s per replica, three replicas cover 494/s with headroom and margin.
    trusting = scaler()
    assert [trusting.decide(seen(t, 494, 4)).desired for t in range(0, 30)][-1] == 3
    # A window that measured 170/s (keeping up, so the estimate stays) keeps the fourth.
    cautious = scaler()
    for t in range(0, 6):
        cautious.decide(Observation(t, 900, 12, 12, input_rate=680, consume_rate=680, replicas=4))
    assert cautious.per_replica_rate == 182
    assert {cautious.decide(seen(t, 494, 4)).desired for t in range(6, 40)} == {4}


def test_capacity_comes_from_a_window_not_from_one_burst_of_commits() -> None:
    policy = ScalingPolicy(warmup_s=0, saturation_lag=500, initial_replica_rate=170)
    scaler = Autoscaler(policy, 4)
    # Commits land once a second: the group's 680/s reads as 0 and 1,360 by turns.
    for t in range(0, 30):
        consumed = 1360.0 if t % 2 else 0.0
        scaler.decide(Observation(t, 3000, 12, 12, 700, consumed, replicas=4))
    assert scaler.per_replica_rate == pytest.approx(170, rel=0.2)


def test_a_scale_up_budgets_the_stall_it_causes() -> None:
    # 500/s at 185/s and 600 lag: 3 replicas without a stall, but a 4 s stall adds
    # 2,000 records to drain in 30 s: 4 in one step instead of 3 and then 4.
    without = scaler_at(1, rebalance_stall_s=0).decide(seen(0, 500, 1, lag=600))
    with_stall = scaler_at(1, rebalance_stall_s=4).decide(seen(0, 500, 1, lag=600))
    assert (without.desired, with_stall.desired) == (3, 4)


# -- the simulator --------------------------------------------------------------------------


def fixed(replicas: int) -> OurScaler:
    """A scaler that asks for `replicas` from its first decision on and never changes."""
    scaler = OurScaler(ScalingPolicy(max_replicas=12), replicas, interval_s=1e9)
    scaler.autoscaler.target = replicas
    scaler.desired = lambda _observation: replicas  # type: ignore[method-assign]
    return scaler


def test_an_eager_rebalance_stops_every_member_an_incremental_one_only_the_moved_share() -> None:
    trace = steady(2000, duration_s=20)  # far more than any size here handles: always busy
    outputs = {}
    for protocol in ("eager", "incremental"):
        model = GroupModel(
            per_replica_rate=100,
            startup_s=5,
            rebalance_s=4,
            protocol=protocol,  # type: ignore[arg-type]
        )
        result = simulate(trace, fixed(4), model, start_replicas=2)
        outputs[protocol] = result.outputs
        assert result.rebalances == 1
    # The two new replicas join at 5 s: 5..8 stalled.
    assert outputs["eager"][5:9] == [0.0] * 4
    # Incremental: half the partitions move to the new two; the first two keep theirs busy.
    assert outputs["incremental"][5:9] == [pytest.approx(200.0)] * 4
    assert outputs["eager"][10] == outputs["incremental"][10] == pytest.approx(400)


def test_replicas_that_join_together_cost_one_rebalance_and_staggered_ones_several() -> None:
    trace = steady(2000, duration_s=40)
    counts = {}
    for together in (True, False):
        model = GroupModel(
            per_replica_rate=100,
            startup_s=5,
            startup_jitter_s=6,
            rebalance_s=2,
            join_together=together,
            seed=3,
        )
        counts[together] = simulate(trace, fixed(5), model).rebalances
    assert counts[True] == 1
    assert counts[False] >= 3


def test_noise_is_seeded_a_run_repeats() -> None:
    model = noisy(GroupModel(), seed=7)
    first = simulate(step(150), OurScaler(ScalingPolicy(max_replicas=12), 1), model)
    again = simulate(step(150), OurScaler(ScalingPolicy(max_replicas=12), 1), model)
    other = simulate(step(150), OurScaler(ScalingPolicy(max_replicas=12), 1), noisy(model, seed=8))
    assert first.outputs == again.outputs
    assert first.inputs != other.inputs
    assert max(abs(rate / 150 - 1) for rate in first.inputs[:60]) <= 0.05


# -- properties, with noise on --------------------------------------------------------------

models = st.builds(
    lambda capacity, protocol, together, seed: noisy(
        GroupModel(
            per_replica_rate=capacity,
            partitions=12,
            max_replicas=12,
            protocol=protocol,
            join_together=together,
        ),
        noise=0.05,
        seed=seed,
    ),
    st.floats(100, 400),
    st.sampled_from(["eager", "incremental"]),
    st.booleans(),
    st.integers(0, 2**32),
)


@settings(max_examples=60, deadline=None)
@given(models, st.floats(0.05, 0.9), st.sampled_from([1.0, 5.0]), st.booleans())
def test_a_constant_noisy_input_changes_direction_at_most_once_in_ten_minutes(
    model: GroupModel, load: float, interval_s: float, capacity_known: bool
) -> None:
    """`load`: the input as a share of what the largest group handles."""
    rate = load * model.per_replica_rate * model.max_replicas
    policy = ScalingPolicy(
        max_replicas=12, initial_replica_rate=model.per_replica_rate if capacity_known else None
    )
    result = simulate(steady(rate, 600), OurScaler(policy, 1, interval_s), model)
    assert direction_changes(result) <= 1


@settings(max_examples=60, deadline=None)
@given(
    models,
    st.floats(0.02, 0.3),
    st.floats(1.5, 5),
    st.sampled_from([1.0, 5.0]),
    st.booleans(),
)
def test_a_noisy_step_changes_direction_at_most_once(
    model: GroupModel, load: float, factor: float, interval_s: float, capacity_known: bool
) -> None:
    """From a group sized for the base input, a step of up to 5× (still within 12 replicas)."""
    base = load * model.per_replica_rate * model.max_replicas
    base = min(base, model.per_replica_rate * model.max_replicas / factor)
    policy = ScalingPolicy(
        max_replicas=12, initial_replica_rate=model.per_replica_rate if capacity_known else None
    )
    trace: Trace = step(base, factor=factor, at_s=120, duration_s=600)
    result = simulate(trace, OurScaler(policy, 1, interval_s), model)
    assert direction_changes(result, since=120) <= 1
