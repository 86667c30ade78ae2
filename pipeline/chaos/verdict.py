"""What a chaos run did to the events, judged from the topics alone.

Every output names the input it came from (partition and offset), so an
input is lost when neither an output nor a dead letter names it, and an
output is a duplicate when an earlier one names the same input. Order is
per key: a key's outputs, first occurrences in the order they were
stored, must name its inputs in increasing offsets. Time comes from the
outputs' timestamps (set when the worker produced them): the longest gap
between two outputs while the load ran, and for each fault how long the
output rate took to be back, for good, at 90% of its rate before the
first fault.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

RECOVERED_SHARE = 0.9
SMOOTHING_S = 3
"""Output rates are compared as 3-second means: a worker publishes in batches, so a
single second's count is noisy."""


class InputRecord(NamedTuple):
    partition: int
    offset: int
    key: str


class OutputRecord(NamedTuple):
    partition: int
    offset: int
    key: str
    source_partition: int
    source_offset: int
    timestamp_ms: int
    replica: str
    key_count: int = -1
    """A stateful checker's count for the key after this input; -1: not counted."""


@dataclass
class Verdict:
    events_in: int
    outputs: int
    lost: int
    duplicates: int
    order_violations: int
    dead_letters: int
    max_gap_s: float
    recovery_s: float
    recovered: bool
    """False: the output rate was not back within the load after a fault (recovery_s is
    then the time the load still ran)."""
    lost_examples: list[str] = field(default_factory=list)
    order_examples: list[str] = field(default_factory=list)
    counted: bool = False
    """The outputs carry a stateful checker's counts, judged below."""
    counts_behind: int = 0
    """Outputs whose count is below the input's place among its key's inputs: a state change
    lost (every promise forbids it)."""
    counts_ahead: int = 0
    """Inputs counted twice: per key, the most an output's count is above its input's place
    (at-least-once allows it after a crash, each with its output repeated; exactly-once
    does not)."""
    count_examples: list[str] = field(default_factory=list)


def judge(
    inputs: Sequence[InputRecord],
    outputs: Sequence[OutputRecord],
    dead_letters: Collection[tuple[int, int]],
    faults_at: Sequence[float],
    load_window: tuple[float, float],
    baseline_until: float | None = None,
) -> Verdict:
    """`dead_letters`: (source partition, source offset) of each DLQ record; times in epoch s.

    The output rate to come back to is that of the 10 s before `baseline_until`
    (default: the first fault).
    """
    named = Counter((o.source_partition, o.source_offset) for o in outputs)
    kept = set(dead_letters)
    missing = [
        i
        for i in inputs
        if (i.partition, i.offset) not in named and (i.partition, i.offset) not in kept
    ]
    violations, examples = _order_violations(outputs)
    timestamps = sorted(o.timestamp_ms / 1000 for o in outputs)
    recovery, recovered = _recovery(timestamps, faults_at, load_window, baseline_until)
    behind, ahead, count_examples = _counts(inputs, outputs, kept)
    return Verdict(
        events_in=len(inputs),
        outputs=len(outputs),
        lost=len(missing),
        duplicates=sum(count - 1 for count in named.values()),
        order_violations=violations,
        dead_letters=len(dead_letters),
        max_gap_s=_max_gap(timestamps, load_window),
        recovery_s=recovery,
        recovered=recovered,
        lost_examples=[f"{i.key} at {i.partition}@{i.offset}" for i in missing[:5]],
        order_examples=examples,
        counted=any(o.key_count >= 0 for o in outputs),
        counts_behind=behind,
        counts_ahead=ahead,
        count_examples=count_examples,
    )


def _counts(
    inputs: Sequence[InputRecord],
    outputs: Sequence[OutputRecord],
    dead_letters: Collection[tuple[int, int]],
) -> tuple[int, int, list[str]]:
    """Each counted output against its input's place among its key's inputs (1 for the first;
    dead letters leave no count, so they take no place)."""
    place: dict[tuple[int, int], int] = {}
    seen: Counter[str] = Counter()
    for i in sorted(inputs, key=lambda i: (i.partition, i.offset)):
        if (i.partition, i.offset) not in dead_letters:
            seen[i.key] += 1
            place[(i.partition, i.offset)] = seen[i.key]
    behind = 0
    excess: dict[str, int] = {}
    examples: list[str] = []
    for output in outputs:
        wanted = place.get((output.source_partition, output.source_offset))
        if output.key_count < 0 or wanted is None:
            continue
        if output.key_count < wanted:
            behind += 1
            if len(examples) < 5:
                examples.append(
                    f"{output.key}: input {output.source_partition}@{output.source_offset} is "
                    f"its key's event {wanted} but was counted as {output.key_count}"
                )
        excess[output.key] = max(excess.get(output.key, 0), output.key_count - wanted)
    # An input counted twice raises every later count of its key by one: the largest excess
    # of a key is how many of its inputs were counted twice.
    ahead = sum(excess.values())
    return behind, ahead, examples


def _order_violations(outputs: Sequence[OutputRecord]) -> tuple[int, list[str]]:
    seen: set[tuple[int, int]] = set()
    highest: dict[str, int] = {}
    violations = 0
    examples: list[str] = []
    for output in sorted(outputs, key=lambda o: (o.partition, o.offset)):
        source = (output.source_partition, output.source_offset)
        if source in seen:
            continue
        seen.add(source)
        before = highest.get(output.key, -1)
        if output.source_offset < before:
            violations += 1
            if len(examples) < 5:
                examples.append(
                    f"{output.key}: input offset {output.source_offset} stored at "
                    f"{output.partition}@{output.offset}, after input offset {before}"
                )
        else:
            highest[output.key] = output.source_offset
    return violations, examples


def _max_gap(timestamps: Sequence[float], window: tuple[float, float]) -> float:
    start, end = window
    inside = [t for t in timestamps if start <= t <= end]
    if not inside:
        return end - start
    points = [*inside, end] if inside[-1] < end else inside
    return max((b - a for a, b in itertools.pairwise(points)), default=0.0)


def _recovery(
    timestamps: Sequence[float],
    faults_at: Sequence[float],
    window: tuple[float, float],
    baseline_until: float | None,
) -> tuple[float, bool]:
    """The longest time from a fault until the output rate is back for good; whether it was."""
    if not faults_at:
        return 0.0, True
    start, end = window
    seconds = max(1, int(end - start) + 1)
    counts = [0] * seconds
    for t in timestamps:
        index = int(t - start)
        if 0 <= index < seconds:
            counts[index] += 1
    smoothed = [
        sum(counts[i : i + SMOOTHING_S]) / SMOOTHING_S for i in range(seconds - SMOOTHING_S + 1)
    ]
    first = int((faults_at[0] if baseline_until is None else baseline_until) - start)
    before = counts[max(1, first - 10) : first]  # the load's first second is partial
    if not before or not smoothed:
        return 0.0, True
    wanted = RECOVERED_SHARE * sum(before) / len(before)
    worst, recovered = 0.0, True
    limits = [*faults_at[1:], end]
    for fault, limit in zip(faults_at, limits, strict=True):
        # The last second before `limit` is partial (the load stopped, or the next fault).
        scanned = range(
            max(0, int(fault - start)), min(len(smoothed), int(limit - start) - SMOOTHING_S)
        )
        low = [i for i in scanned if smoothed[i] < wanted]
        if not low or not scanned:
            continue
        if low[-1] == scanned[-1]:
            recovered = False
            back_at = limit
        else:
            back_at = start + low[-1] + 1  # the next 3-second mean is back: 1 s resolution
        worst = max(worst, back_at - fault)
    return worst, recovered
