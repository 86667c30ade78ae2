"""The same benches on two checkouts of this project, interleaved, against one broker.

A change that moves code around (issue 43's packages, a split module) must
not cost speed, and these machines are noisy: the same bench swings by a
third between runs. So the two checkouts (say, before and after the change)
take turns within each round, the order flipping every round, on one
broker this script starts (or KAFKA_BOOTSTRAP), and each figure is reported
as its median over the rounds with its spread, and as after / before.

Each checkout runs its own copy of the bench with its own venv
(`DIR/.venv/bin/python DIR/bench/NAME.py ARGS`), so a bench whose internals
moved between the two still runs on either side. A bench's figures are its
last JSON line (every bench under bench/ ends with one); numbers in it are
compared, nested ones by their dotted path.

Run:
  .venv/bin/python bench/compare_trees.py --before /tmp/old --after . --rounds 3 \\
      --bench "pipeline_peers.py --events 100000 --only ours,ours_confluent,raw_aiokafka" \\
      --bench "latency.py --client aiokafka" --bench "latency.py --client confluent"
Prints a table per bench and, last, {"BENCH": {"FIGURE": {"before": M, "after": M,
"after_over_before": R, "before_spread": [lo, hi], "after_spread": [lo, hi]}}}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.dev.localkafka import ephemeral_kafka

Figures = dict[str, float]


def numbers_in(found: Any, prefix: str = "") -> Figures:
    """Every number of a bench's JSON line, keyed by its dotted path (booleans are not numbers)."""
    if isinstance(found, bool):
        return {}
    if isinstance(found, int | float):
        return {prefix: float(found)}
    if isinstance(found, dict):
        numbers: Figures = {}
        for key, value in found.items():
            numbers.update(numbers_in(value, f"{prefix}.{key}" if prefix else str(key)))
        return numbers
    return {}


def last_json_line(output: str) -> dict[str, Any]:
    for line in reversed(output.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            parsed: dict[str, Any] = json.loads(line)
            return parsed
    raise ValueError("the bench printed no JSON line")


def run_bench(tree: Path, bench: str, bootstrap: str, timeout_s: float) -> Figures:
    name, *args = shlex.split(bench)
    command = [str(tree / ".venv" / "bin" / "python"), str(tree / "bench" / name), *args]
    started = time.monotonic()
    done = subprocess.run(
        command,
        cwd=tree,
        env={**os.environ, "KAFKA_BOOTSTRAP": bootstrap},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{bench} in {tree} exited {done.returncode}:\n{done.stderr[-3000:]}")
    figures = numbers_in(last_json_line(done.stdout))
    print(
        f"  {tree.name:>10} {bench}: {len(figures)} figures in {time.monotonic() - started:.0f}s",
        file=sys.stderr,
    )
    return figures


def spread(values: list[float]) -> list[float]:
    return [round(min(values), 4), round(max(values), 4)] if values else []


def summary(before: list[Figures], after: list[Figures]) -> dict[str, dict[str, Any]]:
    figures: dict[str, dict[str, Any]] = {}
    for key in sorted(set().union(*before, *after)):
        olds = [run[key] for run in before if key in run]
        news = [run[key] for run in after if key in run]
        if not olds or not news:
            continue
        old, new = statistics.median(olds), statistics.median(news)
        figures[key] = {
            "before": round(old, 4),
            "after": round(new, 4),
            "after_over_before": round(new / old, 3) if old else None,
            "before_spread": spread(olds),
            "after_spread": spread(news),
        }
    return figures


@contextlib.contextmanager
def broker() -> Iterator[str]:
    configured = os.environ.get("KAFKA_BOOTSTRAP")
    if configured:
        yield configured
        return
    with ephemeral_kafka(progress=lambda m: print(f"[kafka] {m}", file=sys.stderr)) as bootstrap:
        yield bootstrap


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", type=Path, required=True, help="a checkout with a .venv")
    parser.add_argument("--after", type=Path, required=True, help="a checkout with a .venv")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--bench", action="append", required=True, help="NAME.py and its arguments, quoted"
    )
    parser.add_argument("--timeout", type=float, default=1200, help="seconds per bench run")
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    for label, tree in trees.items():
        if not (tree / ".venv" / "bin" / "python").exists():
            parser.error(f"--{label} {tree} has no .venv (run `make setup` there first)")
    runs: dict[str, dict[str, list[Figures]]] = {
        bench: {"before": [], "after": []} for bench in args.bench
    }
    with broker() as bootstrap:
        for round_number in range(args.rounds):
            order = ["before", "after"] if round_number % 2 == 0 else ["after", "before"]
            print(
                f"round {round_number + 1}/{args.rounds}: {' then '.join(order)}", file=sys.stderr
            )
            for bench in args.bench:
                for label in order:
                    runs[bench][label].append(
                        run_bench(trees[label], bench, bootstrap, args.timeout)
                    )
    result = {bench: summary(by["before"], by["after"]) for bench, by in runs.items()}
    for bench, figures in result.items():
        print(f"\n{bench}  (median of {args.rounds}; spread is min-max)")
        for key, row in figures.items():
            print(
                f"  {key:<40} before {row['before']:>12,.3f} {row['before_spread']}"
                f"  after {row['after']:>12,.3f} {row['after_spread']}"
                f"  after/before {row['after_over_before']}"
            )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
