"""A deterministic consumer-group simulator, to compare scaling policies on the same load.

A tick adds the input of that second to the backlog and removes what the
ready replicas can process (each up to `per_replica_rate`, at most one
replica per partition doing work). A replica added by a decision becomes
ready `startup_s` (plus up to `startup_jitter_s`) later, as a real one joins
its group; a removed one stops at once. Policies see what a real monitor
sees: lag, input and consumption rates over their sync interval, the
running replicas, and whether a scale step is still settling.

What the first version left out, and a real group showed (issue 20): every
change of membership is a rebalance, and a rebalance stops output for
`rebalance_s`: every member's on the eager protocol, only the moved
partitions' on an incremental one. Replicas that reach the group at
different times (start-up jitter) cause one rebalance each, unless they
join together (`join_together`, the supervisor's join gate). Input and each
replica's capacity are noisy (seeded, so a run is repeatable).

KEDA's Kafka scaler is modelled by its formula: desired = ceil(total lag /
lagThreshold), capped at the partition count, applied by the HPA every 15 s
with its default behaviour: scale up by at most max(4 pods, 100%) per step,
scale down to the highest recommendation of the last 300 s.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from pipeline.scaling.autoscaler import Autoscaler
from pipeline.scaling.policy import Observation, ScalingPolicy


@dataclass(frozen=True)
class Trace:
    name: str
    duration_s: float
    rate: Callable[[float], float]
    """Events/s arriving at second t."""
    burst_at: float | None = None
    """When the load rises (None: it never does)."""


def steady(base: float, duration_s: float = 600) -> Trace:
    return Trace("steady", duration_s, lambda _t: base)


def step(base: float, factor: float = 5, at_s: float = 60, duration_s: float = 600) -> Trace:
    return Trace("step", duration_s, lambda t: base * (factor if t >= at_s else 1), at_s)


def spike(
    base: float,
    factor: float = 5,
    at_s: float = 60,
    length_s: float = 30,
    duration_s: float = 600,
) -> Trace:
    return Trace(
        "spike", duration_s, lambda t: base * (factor if at_s <= t < at_s + length_s else 1), at_s
    )


@dataclass(frozen=True)
class GroupModel:
    per_replica_rate: float = 200.0
    partitions: int = 12
    startup_s: float = 5.0
    min_replicas: int = 1
    max_replicas: int = 12
    rebalance_s: float = 0.0
    """Output stopped by one rebalance (bench/autoscale.py --timeline measures 2-4 s)."""
    protocol: Literal["eager", "incremental"] = "eager"
    """eager: every member stops; incremental: only the moved partitions do."""
    join_together: bool = True
    """A decision's replicas join at once (one rebalance) rather than as each is up."""
    startup_jitter_s: float = 0.0
    """Each replica's start-up takes up to this much longer than `startup_s` (uniform)."""
    input_noise: float = 0.0
    """Each second's input is off by up to ± this fraction (uniform)."""
    capacity_noise: float = 0.0
    """Each replica's capacity, each second, is off by up to ± this fraction (uniform)."""
    seed: int = 0


def noisy(base: GroupModel, noise: float = 0.05, seed: int = 0) -> GroupModel:
    """What a real group on a shared machine does: ±noise, 3 s eager rebalances, 2 s jitter."""
    return dataclasses.replace(
        base,
        rebalance_s=3.0,
        startup_jitter_s=2.0,
        input_noise=noise,
        capacity_noise=noise,
        seed=seed,
    )


class Scaler(Protocol):
    interval_s: float

    def desired(self, observation: Observation) -> int: ...


class OurScaler:
    def __init__(self, policy: ScalingPolicy, replicas: int, interval_s: float = 5.0) -> None:
        self.interval_s = interval_s
        self.autoscaler = Autoscaler(policy, replicas)

    def desired(self, observation: Observation) -> int:
        return self.autoscaler.decide(observation).desired


class KedaScaler:
    """KEDA's Kafka scaler formula under the HPA's default behaviour."""

    def __init__(
        self,
        lag_threshold: float,
        model: GroupModel,
        interval_s: float = 15.0,
        scale_down_window_s: float = 300.0,
    ) -> None:
        self.interval_s = interval_s
        self.lag_threshold = lag_threshold
        self.model = model
        self.window_s = scale_down_window_s
        self._recent: deque[tuple[float, int]] = deque()
        self._current: int | None = None

    def desired(self, observation: Observation) -> int:
        model = self.model
        raw = math.ceil(observation.lag / self.lag_threshold)
        raw = max(model.min_replicas, min(raw, model.partitions, model.max_replicas))
        current = observation.replicas if self._current is None else self._current
        self._recent.append((observation.at, raw))
        while self._recent and observation.at - self._recent[0][0] > self.window_s:
            self._recent.popleft()
        if raw > current:
            target = min(raw, current + max(4, current))  # HPA default scale-up policy
        else:
            target = min(current, max(d for _, d in self._recent))
        self._current = target
        return target


@dataclass
class SimResult:
    trace: Trace
    model: GroupModel
    times: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    replicas: list[int] = field(default_factory=list)
    inputs: list[float] = field(default_factory=list)
    outputs: list[float] = field(default_factory=list)
    rebalances: int = 0


class _Group:
    """The replicas of one simulated group: who is starting, who is in, and its stalls."""

    def __init__(self, model: GroupModel, replicas: int, rng: random.Random) -> None:
        self.model = model
        self.rng = rng
        self.members = replicas
        self.starting: list[list[float]] = []
        """Per decision, when each of its replicas would be up."""
        self.stall_until = -math.inf
        self.stalled_fraction = 0.0
        self.rebalances = 0

    def _rebalance(self, t: float, moved: float) -> None:
        """A membership change at t: output stops on `moved` of the partitions for a while."""
        self.rebalances += 1
        fraction = 1.0 if self.model.protocol == "eager" else moved
        if t < self.stall_until:
            fraction = max(fraction, self.stalled_fraction)
        self.stall_until = t + self.model.rebalance_s
        self.stalled_fraction = fraction

    def start(self, t: float, count: int) -> None:
        jitter = self.model.startup_jitter_s
        self.starting.append(
            [t + self.model.startup_s + self.rng.uniform(0, jitter) for _ in range(count)]
        )

    def stop(self, t: float, count: int) -> None:
        """Newest first: replicas still starting are cancelled before members leave."""
        while count and self.starting:
            batch = self.starting[-1]
            batch.pop()
            count -= 1
            if not batch:
                self.starting.pop()
        if count:
            before = self.members
            self.members -= count
            self._rebalance(t, count / before)

    def tick(self, t: float) -> None:
        for batch in list(self.starting):
            if self.model.join_together:
                if max(batch) <= t:
                    self.starting.remove(batch)
                    self._join(t, len(batch))
            else:
                arrived = [at for at in batch if at <= t]
                for _ in arrived:
                    batch.remove(min(batch))
                    self._join(t, 1)
                if not batch:
                    self.starting.remove(batch)

    def _join(self, t: float, count: int) -> None:
        self.members += count
        self._rebalance(t, count / self.members)

    @property
    def settling(self) -> bool:
        return bool(self.starting)

    def capacity(self, t: float) -> float:
        model = self.model
        working = min(self.members, model.partitions)
        total = sum(
            model.per_replica_rate * (1 + self.rng.uniform(-1, 1) * model.capacity_noise)
            for _ in range(working)
        )
        if t < self.stall_until:
            total *= 1 - self.stalled_fraction
        return total


def simulate(trace: Trace, scaler: Scaler, model: GroupModel, start_replicas: int = 1) -> SimResult:
    result = SimResult(trace, model)
    rng = random.Random(model.seed)
    group = _Group(model, start_replicas, rng)
    lag = 0.0
    running = start_replicas
    last_decision = -math.inf
    window_input = window_processed = 0.0
    window_start = 0.0
    t = 0.0
    while t < trace.duration_s:
        arriving = trace.rate(t) * (1 + rng.uniform(-1, 1) * model.input_noise)
        group.tick(t)
        processed = min(lag + arriving, group.capacity(t))
        lag = lag + arriving - processed
        window_input += arriving
        window_processed += processed
        if t - last_decision >= scaler.interval_s:
            elapsed = max(1.0, t - window_start)
            observation = Observation(
                at=t,
                lag=int(lag),
                partitions=model.partitions,
                partitions_with_lag=model.partitions if lag >= 1 else 0,
                input_rate=window_input / elapsed,
                consume_rate=window_processed / elapsed,
                replicas=running,
                settling=group.settling or t < group.stall_until,
            )
            target = scaler.desired(observation)
            if target > running:
                group.start(t, target - running)
            elif target < running:
                group.stop(t, running - target)
            running = target
            last_decision = t
            window_input = window_processed = 0.0
            window_start = t
        result.times.append(t)
        result.lags.append(lag)
        result.replicas.append(running)
        result.inputs.append(arriving)
        result.outputs.append(processed)
        t += 1.0
    result.rebalances = group.rebalances
    return result


@dataclass(frozen=True)
class Evaluation:
    reaction_s: float | None
    time_to_drain_s: float | None
    peak_lag: float
    replica_seconds_vs_ideal: float
    direction_changes: int

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "reaction_s": self.reaction_s,
            "time_to_drain_s": self.time_to_drain_s,
            "peak_lag": round(self.peak_lag),
            "replica_seconds_vs_ideal": round(self.replica_seconds_vs_ideal, 3),
            "direction_changes": self.direction_changes,
        }


def evaluate(
    times: list[float],
    lags: list[float],
    replicas: list[int],
    inputs: list[float],
    per_replica_rate: float,
    burst_at: float | None,
    min_replicas: int = 1,
    settled_s: float = 3.0,
    base_rate: float = 0.0,
) -> Evaluation:
    """The comparison's figures, for a simulated or a measured run alike.

    reaction: from the rise in load to the first added replica; time to
    drain: from the rise to the last moment the lag exceeded `settled_s` of
    input (of the base input at least: a run's last records are still being
    committed after its input stops); ideal replica-seconds: just enough
    replicas for the input, always.
    Samples are weighted by the time to the next one.
    """
    reaction = drain = None
    if burst_at is not None:
        for t, before, after in zip(times[1:], replicas, replicas[1:], strict=False):
            if t >= burst_at and after > before:
                reaction = t - burst_at
                break
        # Against the input of the last few seconds: when the input stops, the records
        # of its last second are lag until their commit, not a backlog.
        recent = [
            max(r for t2, r in zip(times, inputs, strict=True) if t - settled_s <= t2 <= t)
            for t in times
        ]
        over = [
            t
            for t, lag, rate in zip(times, lags, recent, strict=True)
            if t >= burst_at and lag > max(max(rate, base_rate) * settled_s, 1.0)
        ]
        drain = (over[-1] - burst_at) if over else 0.0
    spans = [b - a for a, b in itertools.pairwise(times)] + [1.0]
    used = sum(count * span for count, span in zip(replicas, spans, strict=True))
    ideal = sum(
        max(min_replicas, math.ceil(rate / per_replica_rate)) * span
        for rate, span in zip(inputs, spans, strict=True)
    )
    changes = [b - a for a, b in itertools.pairwise(replicas) if b != a]
    direction_changes = sum(1 for a, b in itertools.pairwise(changes) if (a > 0) != (b > 0))
    return Evaluation(
        reaction_s=reaction,
        time_to_drain_s=drain,
        peak_lag=max(lags) if lags else 0.0,
        replica_seconds_vs_ideal=used / ideal if ideal else 0.0,
        direction_changes=direction_changes,
    )


def evaluate_sim(result: SimResult) -> Evaluation:
    return evaluate(
        result.times,
        result.lags,
        result.replicas,
        result.inputs,
        result.model.per_replica_rate,
        result.trace.burst_at,
        result.model.min_replicas,
        base_rate=result.trace.rate(0),
    )
