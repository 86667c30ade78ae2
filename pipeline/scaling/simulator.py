"""A deterministic consumer-group simulator, to compare scaling policies on the same load.

A tick adds the input of that second to the backlog and removes what the
ready replicas can process (each up to `per_replica_rate`, at most one
replica per partition doing work). A replica added by a decision becomes
ready `startup_s` later, as a real one joins its group; a removed one stops
at once. Policies see what a real monitor sees: lag, input and consumption
rates over their sync interval, and the running replicas.

KEDA's Kafka scaler is modelled by its formula: desired = ceil(total lag /
lagThreshold), capped at the partition count, applied by the HPA every 15 s
with its default behaviour: scale up by at most max(4 pods, 100%) per step,
scale down to the highest recommendation of the last 300 s.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from pipeline.scaling.policy import Autoscaler, Observation, ScalingPolicy


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


def simulate(trace: Trace, scaler: Scaler, model: GroupModel, start_replicas: int = 1) -> SimResult:
    result = SimResult(trace, model)
    lag = 0.0
    running = start_replicas
    ready_at: list[float] = []  # replicas still starting
    ready = start_replicas
    last_decision = -math.inf
    window_input = window_processed = 0.0
    window_start = 0.0
    t = 0.0
    while t < trace.duration_s:
        arriving = trace.rate(t)
        ready += sum(1 for at in ready_at if at <= t)
        ready_at = [at for at in ready_at if at > t]
        capacity = min(ready, model.partitions) * model.per_replica_rate
        processed = min(lag + arriving, capacity)
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
            )
            target = scaler.desired(observation)
            if target > running:
                ready_at.extend([t + model.startup_s] * (target - running))
            elif target < running:
                removing = running - target
                starting = min(removing, len(ready_at))
                ready_at = ready_at[: len(ready_at) - starting]
                ready -= removing - starting
            running = target
            last_decision = t
            window_input = window_processed = 0.0
            window_start = t
        result.times.append(t)
        result.lags.append(lag)
        result.replicas.append(running)
        result.inputs.append(arriving)
        t += 1.0
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
        over = [
            t
            for t, lag, rate in zip(times, lags, inputs, strict=True)
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
