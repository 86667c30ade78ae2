"""How many replicas a consumer group needs: the policy, what is observed, a pure recommendation.

The recommendation sizes the group to keep up with the input rate (with
headroom) and to drain the backlog within a target time, at the capacity
one replica has shown. Lag alone (KEDA's Kafka scaler) cannot tell a
backlog that one replica will clear in a second from one that needs eight:
rates can.

The state machine that adds memory (learned capacity, stabilisation, hysteresis,
stalls) is pipeline.scaling.autoscaler.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipeline.errors import ConfigError

REPLAY_GROUP_PREFIX = "replay."


def is_replay_group(group: str) -> bool:
    """Replays and backfills run in their own groups; the live group's policy ignores them."""
    return group.startswith(REPLAY_GROUP_PREFIX) or ".replay." in group


@dataclass(frozen=True)
class ScalingPolicy:
    min_replicas: int = 1
    max_replicas: int = 8
    target_drain_s: float = 30.0
    """A backlog should be gone within this long."""
    scale_down_window_s: float = 20.0
    """Scale down only to the highest recommendation of this long."""
    caught_up_window_s: float = 5.0
    """Once caught up, a lower need that has held this long is trusted.

    Never longer than scale_down_window_s; set it to that to always wait the
    whole window.
    """
    headroom: float = 1.05
    """Capacity kept above the input rate, so a small rise does not build lag at once."""
    warmup_s: float = 10.0
    """After a change, how long before the group's rate says something about its capacity."""
    saturation_lag: int = 500
    """Below this lag the replicas may be idle part of the time: no capacity measurement."""
    initial_replica_rate: float | None = None
    """Events/s one replica handles, until one is measured (None: grow by doubling)."""
    rebalance_stall_s: float = 3.0
    """How long a scale step stops the group's output (a rebalance on the eager protocol).

    A scale-up adds the input of this long to the lag it must drain: the stall
    it causes is part of the backlog, and sizing for it avoids a second step.
    bench/autoscale.py --timeline shows it (2 to 4 s here with aiokafka).
    """

    def __post_init__(self) -> None:
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ConfigError(
                f"replicas: need 1 <= min ({self.min_replicas}) <= max ({self.max_replicas})"
            )
        if self.target_drain_s <= 0 or self.headroom < 1:
            raise ConfigError("target_drain_s must be positive and headroom at least 1")
        if self.caught_up_window_s < 0 or self.scale_down_window_s < 0:
            raise ConfigError("the scale-down windows cannot be negative")
        if self.rebalance_stall_s < 0:
            raise ConfigError("rebalance_stall_s cannot be negative")


@dataclass(frozen=True)
class Observation:
    at: float
    """Monotonic seconds."""
    lag: int
    partitions: int
    partitions_with_lag: int
    input_rate: float
    """Events/s produced to the topic."""
    consume_rate: float
    """Events/s the group committed."""
    replicas: int
    """Replicas running now."""
    settling: bool = False
    """A scale step is under way: replicas starting or draining, or the group rebalancing."""


@dataclass(frozen=True)
class Decision:
    desired: int
    reason: str
    per_replica_rate: float | None


def need(
    policy: ScalingPolicy, observation: Observation, per_replica_rate: float, extra_lag: float = 0
) -> float:
    """Replicas (fractional) to keep up with the input and drain the lag (+ `extra_lag`) in time.

    Unbounded by min and max: the hysteresis compares it with the replicas
    running before rounding.
    """
    keep_up_rate = observation.input_rate * policy.headroom
    lag = max(0.0, observation.lag + extra_lag)
    keep_up = keep_up_rate / per_replica_rate
    drain = (keep_up_rate + lag / policy.target_drain_s) / per_replica_rate
    # Replicas beyond the partitions that have lag cannot drain any faster.
    drain = min(drain, max(keep_up, float(observation.partitions_with_lag)))
    return max(keep_up, drain)


def recommend(
    policy: ScalingPolicy, observation: Observation, per_replica_rate: float | None
) -> tuple[int, str]:
    """Replicas for this observation alone, and why (pure; no memory of earlier ones)."""
    ceiling = max(policy.min_replicas, min(policy.max_replicas, observation.partitions))
    replicas = max(1, observation.replicas)
    if per_replica_rate is None or per_replica_rate <= 0:
        desired, why = replicas, "no capacity measured yet: hold"
    else:
        desired = ceil_within(need(policy, observation, per_replica_rate), ceiling)
        why = explain(policy, observation, per_replica_rate)
    return bounded(policy, ceiling, desired, why)


def explain(policy: ScalingPolicy, observation: Observation, per_replica_rate: float) -> str:
    return (
        f"input {observation.input_rate:,.0f}/s and lag {observation.lag:,} "
        f"(drain in {policy.target_drain_s:.0f}s) at {per_replica_rate:,.0f}/s per replica"
    )


def bounded(policy: ScalingPolicy, ceiling: int, desired: int, why: str) -> tuple[int, str]:
    bounded = min(ceiling, max(policy.min_replicas, desired))
    if bounded != desired:
        why += f"; bounded to {bounded} (min {policy.min_replicas}, max {ceiling})"
    return bounded, why


def ceil_within(replicas: float, ceiling: int) -> int:
    """ceil(replicas), at most `ceiling`.

    Capped before rounding: a per-replica rate measured near zero makes the
    need overflow to infinity, which has no integer ceiling.
    """
    return math.ceil(replicas) if replicas < ceiling else ceiling
