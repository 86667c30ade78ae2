"""How many replicas a consumer group needs: a pure recommendation and a small state machine.

The recommendation sizes the group to keep up with the input rate (with
headroom) and to drain the backlog within a target time, at the capacity
one replica has shown. Lag alone (KEDA's Kafka scaler) cannot tell a
backlog that one replica will clear in a second from one that needs eight:
rates can.

The state machine adds what a recommendation cannot know by itself:
- a per-replica capacity, learned only while the group is saturated (with
  lag, every replica busy) and its size has been stable for a while; an idle
  group's rate says nothing about what it could do;
- scale up at once, scale down only to the highest recommendation of the
  stabilisation window (as the HPA does), so noisy lag does not flap;
- but once the group has caught up, trust a lower need that has held for a
  short window: otherwise the replicas that drained a burst's backlog stay
  for the whole long window. After bench/autoscale.py's 15 s spike the lag
  was gone within a second, yet the window kept three extra replicas for
  11 s and two for 8 s more: 1.39 times the ideal replica-seconds (1.13
  with the short window). A quick
  scale-down that has to be undone within the long window was premature:
  the next ones wait the long window, four times as long each time, so input
  that bursts periodically settles instead of flapping;
- never above the partition count: an extra replica would sit idle.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from pipeline.errors import ConfigError

REPLAY_GROUP_PREFIX = "replay."
CAPACITY_SMOOTHING = 0.3
"""Weight of a new capacity measurement in the moving average."""
CAUGHT_UP_INPUT_S = 2.0
"""A group has caught up when its lag is at most this many seconds of input
(records fetched, handled and awaiting the next commit are lag too)."""
BACKOFF_GROWTH = 4
"""Each premature quick scale-down in a row keeps the long window this many times longer."""
MAX_BACKOFF_WINDOWS = 64
"""... but for at most this many long windows (about 21 minutes by default)."""


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

    def __post_init__(self) -> None:
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ConfigError(
                f"replicas: need 1 <= min ({self.min_replicas}) <= max ({self.max_replicas})"
            )
        if self.target_drain_s <= 0 or self.headroom < 1:
            raise ConfigError("target_drain_s must be positive and headroom at least 1")
        if self.caught_up_window_s < 0 or self.scale_down_window_s < 0:
            raise ConfigError("the scale-down windows cannot be negative")


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


@dataclass(frozen=True)
class Decision:
    desired: int
    reason: str
    per_replica_rate: float | None


def recommend(
    policy: ScalingPolicy, observation: Observation, per_replica_rate: float | None
) -> tuple[int, str]:
    """Replicas for this observation alone, and why (pure; no memory of earlier ones)."""
    ceiling = max(policy.min_replicas, min(policy.max_replicas, observation.partitions))
    replicas = max(1, observation.replicas)
    if per_replica_rate is None or per_replica_rate <= 0:
        desired, why = replicas, "no capacity measured yet: hold"
    else:
        keep_up = _replicas_for(observation.input_rate * policy.headroom, per_replica_rate, ceiling)
        drain_rate = observation.input_rate * policy.headroom + (
            observation.lag / policy.target_drain_s
        )
        drain = _replicas_for(drain_rate, per_replica_rate, ceiling)
        # Replicas beyond the partitions that have lag cannot drain any faster.
        drain = min(drain, max(keep_up, observation.partitions_with_lag))
        desired = max(keep_up, drain)
        why = (
            f"input {observation.input_rate:,.0f}/s and lag {observation.lag:,} "
            f"(drain in {policy.target_drain_s:.0f}s) at {per_replica_rate:,.0f}/s per replica"
        )
    bounded = min(ceiling, max(policy.min_replicas, desired))
    if bounded != desired:
        why += f"; bounded to {bounded} (min {policy.min_replicas}, max {ceiling})"
    return bounded, why


def _replicas_for(rate: float, per_replica_rate: float, ceiling: int) -> int:
    """ceil(rate / per_replica_rate), at most `ceiling`.

    Capped before rounding: a per-replica rate measured near zero makes the
    quotient overflow to infinity, which has no integer ceiling.
    """
    needed = rate / per_replica_rate
    return math.ceil(needed) if needed < ceiling else ceiling


class Autoscaler:
    """Decisions over time: learned capacity, fast up, slow down."""

    def __init__(self, policy: ScalingPolicy, replicas: int) -> None:
        self.policy = policy
        self.per_replica_rate = policy.initial_replica_rate
        self.target = replicas
        self._stable_since: float | None = None
        self._size_seen: int | None = None
        self._recent: deque[tuple[float, int]] = deque()
        self._previous_lag = 0
        self._caught_up_since: float | None = None
        self._quick_down_at: float | None = None
        """When the last quick scale-down happened, until the long window has passed."""
        self._premature = 0
        """Quick scale-downs undone in a row."""
        self._long_window_until = -math.inf

    def _learn(self, observation: Observation) -> bool:
        """Update the capacity estimate; whether the group was busy the whole interval."""
        previous_lag, self._previous_lag = self._previous_lag, observation.lag
        # Busy the whole interval: lag at its start and at its end.
        saturated = min(previous_lag, observation.lag) >= self.policy.saturation_lag
        if observation.replicas != self._size_seen:
            self._size_seen = observation.replicas
            self._stable_since = observation.at
            return saturated
        assert self._stable_since is not None
        warmed_up = observation.at - self._stable_since >= self.policy.warmup_s
        if warmed_up and saturated and observation.replicas:
            measured = observation.consume_rate / observation.replicas
            if measured <= 0:
                return saturated
            if self.per_replica_rate is None:
                self.per_replica_rate = measured
            else:
                self.per_replica_rate += CAPACITY_SMOOTHING * (measured - self.per_replica_rate)
        return saturated

    def _unknown_capacity(self, observation: Observation, saturated: bool) -> tuple[int, str]:
        """Before any measurement: wait one busy interval to measure, unless far behind."""
        far_behind = observation.lag > observation.input_rate * self.policy.target_drain_s
        if saturated and far_behind and observation.replicas < observation.partitions:
            doubled = min(observation.partitions, self.policy.max_replicas, self.target * 2)
            return doubled, "far behind while the capacity is still being measured: double"
        return self.target, "measuring one replica's capacity: hold"

    def _track_caught_up(self, observation: Observation) -> None:
        caught_up = observation.lag <= max(
            self.policy.saturation_lag, observation.input_rate * CAUGHT_UP_INPUT_S
        )
        if not caught_up:
            self._caught_up_since = None
        elif self._caught_up_since is None:
            self._caught_up_since = observation.at

    def _down_window(self, at: float) -> float:
        """How long a lower need must have held: short once caught up, unless backing off."""
        caught_up_for = -math.inf if self._caught_up_since is None else at - self._caught_up_since
        short = min(self.policy.caught_up_window_s, self.policy.scale_down_window_s)
        if at >= self._long_window_until and caught_up_for >= short:
            return short
        return self.policy.scale_down_window_s

    def _note_scale_up(self, at: float) -> None:
        """A scale-up soon after a quick scale-down proves that one premature: back off."""
        if self._quick_down_at is not None:
            self._premature += 1
            windows = min(BACKOFF_GROWTH**self._premature, MAX_BACKOFF_WINDOWS)
            self._long_window_until = at + self.policy.scale_down_window_s * windows
            self._quick_down_at = None

    def decide(self, observation: Observation) -> Decision:
        at = observation.at
        saturated = self._learn(observation)
        self._track_caught_up(observation)
        if self._quick_down_at is not None and at - self._quick_down_at >= (
            self.policy.scale_down_window_s
        ):
            # The last quick scale-down stood for a whole long window: it was right.
            self._quick_down_at = None
            self._premature = 0
        if self.per_replica_rate is None:
            raw, why = self._unknown_capacity(observation, saturated)
        else:
            raw, why = recommend(self.policy, observation, self.per_replica_rate)
        self._recent.append((at, raw))
        while self._recent and at - self._recent[0][0] > self.policy.scale_down_window_s:
            self._recent.popleft()
        if raw > self.target:
            self._note_scale_up(at)
            self.target = raw
            reason = f"up to {raw}: {why}"
        elif raw < self.target:
            # The highest recommendation of the window: one quiet moment is not a trend.
            window_s = self._down_window(at)
            floor = max(desired for seen_at, desired in self._recent if at - seen_at <= window_s)
            quick = window_s < self.policy.scale_down_window_s
            if floor < self.target:
                self.target = floor
                if quick:
                    self._quick_down_at = at
                how = ", caught up for" if quick else " after"
                reason = f"down to {floor}{how} {window_s:.0f}s: {why}"
            else:
                reason = f"hold {self.target} (down to {raw} waits for the window): {why}"
        else:
            reason = f"hold {self.target}: {why}"
        return Decision(self.target, reason, self.per_replica_rate)
