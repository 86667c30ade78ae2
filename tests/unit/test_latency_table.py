"""bench/latency.py's comparison summary: medians, spreads and the issue's targets from rounds."""

from __future__ import annotations

from typing import Any

from bench.latency_table import spread, summarize, table_lines, targets

LEVELS = (0.1, 0.5)


def run(max_rate: int, p50s: tuple[int, int], p99s: tuple[int, int]) -> dict[str, Any]:
    return {
        "max_rate": max_rate,
        "levels": [
            {"level": level, "rate": round(max_rate * level), "p50_ms": p50, "p99_ms": p99}
            for level, p50, p99 in zip(LEVELS, p50s, p99s, strict=True)
        ],
    }


FLOORS = [{"p50_ms": 1, "p99_ms": 9, "p999_ms": 21}, {"p50_ms": 1, "p99_ms": 15, "p999_ms": 33}]


def test_spread_is_the_widest_distance_from_the_median_as_a_share_of_it() -> None:
    assert spread([10, 13, 7]) == {"median": 10, "min": 7, "max": 13, "spread": 0.3}
    assert spread([0, 0])["spread"] is None


def test_the_targets_rest_on_the_medians_of_the_rounds() -> None:
    summary = summarize(
        FLOORS,
        {
            "ours": [run(20_000, (4, 9), (20, 28)), run(21_000, (6, 12), (22, 40))],
            "ours_confluent": [run(22_000, (3, 8), (15, 25)), run(23_000, (3, 8), (15, 27))],
            "raw_aiokafka": [run(30_000, (2, 4), (8, 10)), run(31_000, (2, 4), (8, 10))],
        },
        LEVELS,
    )
    verdicts = {label: met for label, met, _ in targets(summary)}
    # ours at 50%: p99 median 34 ms (> 30, > 3 × 10), p50 median 10.5 ms (> 10)
    assert verdicts["ours: p99 at 50% ≤ 3× raw aiokafka's"] is False
    assert verdicts["ours: p99 at 50% ≤ 30 ms"] is False
    assert verdicts["ours: p50 at 50% ≤ 10 ms"] is False
    assert verdicts["ours: p50 at 10% ≤ 5 ms"] is True  # median 5
    # 28 and 40 around a median of 34: ±18%
    assert verdicts["ours: p99 at 50% within ±30% of its median over rounds"] is True
    assert verdicts["ours_confluent: p99 at 50% ≤ 30 ms"] is True
    assert verdicts["confluent no worse than aiokafka: p99 at 50%"] is True
    lines = table_lines(summary, LEVELS)
    assert "p99 12 ms (9–15)" in lines[0]
    assert any(line.startswith("ours ") and "34 (28–40)" in line for line in lines)


def test_a_contestant_left_out_is_not_measured_rather_than_met() -> None:
    summary = summarize(FLOORS, {"ours": [run(20_000, (4, 9), (20, 28))]}, LEVELS)
    verdicts = {label: met for label, met, _ in targets(summary)}
    assert verdicts["ours: p99 at 50% ≤ 3× raw aiokafka's"] is None
    assert verdicts["confluent no worse than aiokafka: p99 at 50%"] is None
