"""How many replicas over time: the scaling policy's recommendation, with memory.

The state machine adds what a recommendation cannot know by itself:
- a per-replica capacity, learned only while the group is saturated (with
  lag, every replica busy) and its size has been stable for a while; an idle
  group's rate says nothing about what it could do;
- scale up at once, scale down only to the highest recommendation of the
  stabilisation window (as the HPA does), so noisy lag does not flap;
- but once the group has caught up, trust a lower need that has held for a
  short window: otherwise the replicas that drained a burst's backlog stay
  for the whole long window (docs/design-notes.md#autoscaler). A quick
  scale-down that has to be undone within the long window was premature:
  the next ones wait the long window, four times as long each time, so input
  that bursts periodically settles instead of flapping;
- hysteresis at the integer boundary: up only when the need clearly exceeds
  the replicas (UP_MARGIN), down only to a count that keeps a margin over the
  input (DOWN_MARGIN), so a need wobbling around 3.0 neither adds a fourth
  replica nor removes the third;
- a scale step stalls the group (replicas start, the group rebalances):
  while it settles, nothing is learned about capacity, the lag the stall
  itself explains is not read as new demand, and a scale-up budgets the
  stall it is about to cause, so a burst is met by one step, not two;
- never above the partition count: an extra replica would sit idle.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque

from pipeline.scaling.policy import (
    Decision,
    Observation,
    ScalingPolicy,
    bounded,
    ceil_within,
    explain,
    need,
)

CAPACITY_SMOOTHING = 0.3
"""Weight of a new capacity measurement in the moving average."""
CAPACITY_WINDOW_S = 5.0
"""A capacity is measured over this many saturated seconds: over one second, commits come
in bursts, read as nothing and then as several times the real rate."""
CAUGHT_UP_INPUT_S = 2.0
"""A group has caught up when its lag is at most this many seconds of input
(records fetched, handled and awaiting the next commit are lag too)."""
BACKOFF_GROWTH = 4
"""Each premature quick scale-down in a row keeps the long window this many times longer."""
MAX_BACKOFF_WINDOWS = 64
"""... but for at most this many long windows (about 21 minutes by default)."""
CAUTIOUS_MEASUREMENTS = 3
"""A scale-down sizes by the lowest of this many latest capacity measurements."""
FALLING_SHORT = 0.05
"""A group that keeps up with its input shows only that it can do at least that much: its
rate lowers the capacity estimate only when it falls this far short of the input. Replicas
with records in flight keep a lag above saturation_lag while keeping up; read as capacity,
their rate would drag the estimate down and hold a replica too many."""
UP_MARGIN = 0.10
"""Scale up when the need exceeds the replicas by more than this fraction.

On a steady load the input rate and one replica's capacity each wobble by
about ±5% from one interval to the next; their ratio, the need, by up to
±10%. A need of 3.0 must not become a fourth replica on one noisy second.
A real deficit below the margin still builds lag, and the drain term turns
lag into need: it crosses the margin within a few intervals.
"""
DOWN_MARGIN = 0.05
"""Scale down only to a count whose capacity covers the input, headroom included, by this
fraction more: a +5% wobble after the step leaves the need below the count, and the
up rule needs UP_MARGIN above it, so the step cannot be undone by noise. Not more: a
count that covers the input by a few percent must remain allowed (the figures:
docs/design-notes.md#autoscaler)."""


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
        self._settling_since: float | None = None
        self._first_seen = math.inf
        self._previous_at = -math.inf
        self._window = (0.0, 0.0, 0.0)
        """Saturated seconds, records consumed and records arrived since the last measurement."""
        self._inputs: deque[tuple[float, float]] = deque()
        self._measurements: deque[float] = deque(maxlen=CAUTIOUS_MEASUREMENTS)
        """The last few capacity measurements: a scale-down trusts the lowest."""

    def _learn(self, observation: Observation) -> bool:
        """Update the capacity estimate; whether the group was busy the whole interval."""
        previous_lag, self._previous_lag = self._previous_lag, observation.lag
        previous_at, self._previous_at = self._previous_at, observation.at
        # Busy the whole interval: lag at its start and at its end.
        saturated = min(previous_lag, observation.lag) >= self.policy.saturation_lag
        if observation.settling or observation.replicas != self._size_seen:
            # A step's stall says nothing about capacity: warm up again once it has settled.
            self._size_seen = None if observation.settling else observation.replicas
            self._stable_since = observation.at
            self._window = (0.0, 0.0, 0.0)
            return saturated
        assert self._stable_since is not None
        warmed_up = previous_at - self._stable_since >= self.policy.warmup_s
        if not (warmed_up and saturated and observation.replicas):
            self._window = (0.0, 0.0, 0.0)
            return saturated
        # Commits come in bursts (once a second per replica): measure over a window.
        span = observation.at - previous_at
        elapsed, consumed, arrived = self._window
        elapsed, consumed, arrived = (
            elapsed + span,
            consumed + observation.consume_rate * span,
            arrived + observation.input_rate * span,
        )
        self._window = (elapsed, consumed, arrived)
        if elapsed < CAPACITY_WINDOW_S or consumed <= 0:
            return saturated
        self._window = (0.0, 0.0, 0.0)
        measured = consumed / elapsed / observation.replicas
        self._measurements.append(measured)
        falls_short = consumed < arrived * (1 - FALLING_SHORT)
        if self.per_replica_rate is None:
            self.per_replica_rate = measured
        elif measured >= self.per_replica_rate or falls_short:
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

    def _stall_explains(self, observation: Observation) -> float:
        """Lag a step under way explains: its input since it began (nothing drained meanwhile)."""
        if not observation.settling:
            self._settling_since = None
            return 0.0
        if self._settling_since is None:
            self._settling_since = observation.at
        return observation.input_rate * (observation.at - self._settling_since)

    def _recent_input(self, observation: Observation) -> float:
        """The input's mean over the short window (one observation at least)."""
        window_s = min(self.policy.caught_up_window_s, self.policy.scale_down_window_s)
        self._inputs.append((observation.at, observation.input_rate))
        while len(self._inputs) > 1 and observation.at - self._inputs[0][0] > window_s:
            self._inputs.popleft()
        return sum(rate for _, rate in self._inputs) / len(self._inputs)

    def _measured(self, observation: Observation, ceiling: int) -> tuple[int, int, str]:
        """With a capacity known: (replicas to scale up to, or the target; to go down to; why)."""
        assert self.per_replica_rate is not None
        rate = self.per_replica_rate
        explained = self._stall_explains(observation)
        needed = need(self.policy, observation, rate, extra_lag=-explained)
        why = explain(self.policy, observation, rate)
        if explained:
            why += f"; {explained:,.0f} of the lag is the step's stall"
        up = self.target
        if needed > self.target * (1 + UP_MARGIN):
            # Size for the stall this step causes too, so it is the only step.
            stall = observation.input_rate * self.policy.rebalance_stall_s
            up = ceil_within(need(self.policy, observation, rate, stall - explained), ceiling)
            up = max(up, ceil_within(needed, ceiling))
        # Down on the lowest capacity measured lately: one high window would take the group
        # to a count that then falls short, and back (docs/design-notes.md#autoscaler).
        cautious = min(rate, *self._measurements) if self._measurements else rate
        needed_down = need(self.policy, observation, cautious, extra_lag=-explained)
        # Also when the short window's mean input allows it: the window's highest
        # recommendation decides, and one noisy second would keep a replica.
        steady = dataclasses.replace(observation, input_rate=self._recent_input(observation))
        needed_steady = need(self.policy, steady, cautious, extra_lag=-explained)
        down = ceil_within(min(needed_down, needed_steady) * (1 + DOWN_MARGIN), ceiling)
        if observation.settling:
            down = self.target  # the stall's rates say nothing about the need
        return up, down, why

    def decide(self, observation: Observation) -> Decision:
        at = observation.at
        self._first_seen = min(self._first_seen, at)
        saturated = self._learn(observation)
        self._track_caught_up(observation)
        if self._quick_down_at is not None and at - self._quick_down_at >= (
            self.policy.scale_down_window_s
        ):
            # The last quick scale-down stood for a whole long window: it was right.
            self._quick_down_at = None
            self._premature = 0
        ceiling = max(
            self.policy.min_replicas, min(self.policy.max_replicas, observation.partitions)
        )
        if self.per_replica_rate is None:
            self._stall_explains(observation)
            raw, why = self._unknown_capacity(observation, saturated and not observation.settling)
            up = down = raw
        else:
            up, down, why = self._measured(observation, ceiling)
        up, why = bounded(self.policy, ceiling, up, why)
        down, _ = bounded(self.policy, ceiling, down, why)
        # A scale-up's count (stall budget included) stands for a window at least.
        self._recent.append((at, max(down, up) if up > self.target else down))
        while self._recent and at - self._recent[0][0] > self.policy.scale_down_window_s:
            self._recent.popleft()
        if up > self.target:
            self._note_scale_up(at)
            self.target = up
            # The stall begins with the step, not when the supervisor first reports it.
            self._settling_since = at if self._settling_since is None else self._settling_since
            reason = f"up to {up}: {why}"
        elif down < self.target:
            # The highest recommendation of the window: one quiet moment is not a trend.
            window_s = self._down_window(at)
            floor = max(desired for seen_at, desired in self._recent if at - seen_at <= window_s)
            quick = window_s < self.policy.scale_down_window_s
            if at - self._first_seen < window_s:
                floor = self.target  # the window is not full yet: a first quiet moment is not one
            if floor < self.target:
                self.target = floor
                self._settling_since = at if self._settling_since is None else self._settling_since
                if quick:
                    self._quick_down_at = at
                how = ", caught up for" if quick else " after"
                reason = f"down to {floor}{how} {window_s:.0f}s: {why}"
            else:
                reason = f"hold {self.target} (down to {down} waits for the window): {why}"
        else:
            reason = f"hold {self.target}: {why}"
        return Decision(self.target, reason, self.per_replica_rate)
