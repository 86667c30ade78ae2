"""The comparison's summary: medians and spreads over rounds, its table, and the issue's targets.

Pure functions of the rounds' figures, so the table and the verdicts can be
checked without a broker (tests/unit/bench/test_latency_table.py).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

Figures = dict[str, Any]


def level_key(level: float) -> str:
    return str(round(level * 100))


def spread(values: Sequence[float]) -> Figures:
    """Median, min and max, and the largest distance from the median as a share of it."""
    median = statistics.median(values)
    widest = max(abs(v - median) for v in values)
    return {
        "median": median,
        "min": min(values),
        "max": max(values),
        "spread": round(widest / median, 3) if median else None,
    }


def summarize(
    floors: list[dict[str, int]], runs: dict[str, list[Figures]], levels: tuple[float, ...]
) -> Figures:
    """Per contestant: its maximum rate, and per level p50/p99 as each round's figure and spread."""
    summary: Figures = {"floor": {}, "contestants": {}}
    for figure in ("p50_ms", "p99_ms", "p999_ms"):
        values = [floor[figure] for floor in floors]
        summary["floor"][figure] = {"rounds": values, **spread(values)}
    for name, rounds in runs.items():
        if not rounds:
            continue
        rates = [run["max_rate"] for run in rounds]
        entry: Figures = {"max_rate": {"rounds": rates, **spread(rates)}, "levels": {}}
        for index, level in enumerate(levels):
            at_level: Figures = {}
            for figure in ("rate", "p50_ms", "p99_ms"):
                values = [run["levels"][index][figure] for run in rounds]
                at_level[figure] = {"rounds": values, **spread(values)}
            stages = [run["levels"][index].get("stages") for run in rounds]
            if any(stages):
                at_level["stages"] = stages
            entry["levels"][level_key(level)] = at_level
        summary["contestants"][name] = entry
    return summary


def table_lines(summary: Figures, levels: tuple[float, ...]) -> list[str]:
    """Rows of `median (min–max)` per contestant and level, the floor first."""
    floor = summary["floor"]
    lines = [
        "Kafka's EndToEndLatency (one hop, acks=all, one record at a time): "
        + ", ".join(
            f"{name[:-3]} {floor[name]['median']:g} ms ({floor[name]['min']}–{floor[name]['max']})"
            for name in ("p50_ms", "p99_ms", "p999_ms")
        ),
        "",
        f"{'contestant':15s} {'max rate/s':>22s}  "
        + "  ".join(f"{level_key(level) + '%: p50 / p99 ms':>30s}" for level in levels),
    ]
    for name, entry in summary["contestants"].items():
        rate = entry["max_rate"]
        cells = []
        for level in levels:
            found = entry["levels"][level_key(level)]
            p50, p99 = found["p50_ms"], found["p99_ms"]
            cells.append(
                f"{p50['median']:g} ({p50['min']}–{p50['max']}) / "
                f"{p99['median']:g} ({p99['min']}–{p99['max']})"
            )
        lines.append(
            f"{name:15s} {rate['median']:>8,.0f} ({rate['min']:,}–{rate['max']:,})  "
            + "  ".join(f"{cell:>30s}" for cell in cells)
        )
    return lines


def median_at(summary: Figures, name: str, level: str, figure: str) -> float | None:
    entry = summary["contestants"].get(name, {}).get("levels", {}).get(level)
    return None if entry is None else float(entry[figure]["median"])


def targets(summary: Figures) -> list[tuple[str, bool | None, str]]:
    """Issue 45's latency targets: (target, met, the figures it rests on); None: not measured."""
    found: list[tuple[str, bool | None, str]] = []

    def check(label: str, left: float | None, bound: float | None, shown: str) -> None:
        if left is None or bound is None:
            found.append((label, None, "not measured"))
        else:
            found.append((label, left <= bound, shown.format(left=left, bound=bound)))

    for ours in ("ours", "ours_confluent"):
        if ours not in summary["contestants"]:
            continue
        p99 = median_at(summary, ours, "50", "p99_ms")
        raw = median_at(summary, "raw_aiokafka", "50", "p99_ms")
        check(
            f"{ours}: p99 at 50% ≤ 3× raw aiokafka's",
            p99,
            None if raw is None else 3 * raw,
            "{left:g} ms vs {bound:g} ms",
        )
        check(f"{ours}: p99 at 50% ≤ 30 ms", p99, 30, "{left:g} ms")
        check(
            f"{ours}: p50 at 50% ≤ 10 ms",
            median_at(summary, ours, "50", "p50_ms"),
            10,
            "{left:g} ms",
        )
        check(
            f"{ours}: p50 at 10% ≤ 5 ms",
            median_at(summary, ours, "10", "p50_ms"),
            5,
            "{left:g} ms",
        )
        for level, entry in summary["contestants"][ours]["levels"].items():
            share = entry["p99_ms"]["spread"]
            check(
                f"{ours}: p99 at {level}% within ±30% of its median over rounds",
                share,
                0.3,
                "±{left:.0%}",
            )
    check(
        "confluent no worse than aiokafka: p99 at 50%",
        median_at(summary, "ours_confluent", "50", "p99_ms"),
        median_at(summary, "ours", "50", "p99_ms"),
        "{left:g} ms vs {bound:g} ms",
    )
    return found
