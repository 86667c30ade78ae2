"""Finding and undoing what killed chaos runs left on the machine.

Run at the start of `pipeline chaos run`, `pipeline infra up` and `pipeline
infra down` (and by `pipeline chaos sweep`). Two sources:

- the ledgers of runs whose process is gone (pipeline.chaos.ledger): each
  recorded change undone, newest first;
- traces no ledger names, as a run of an older version (or one killed
  between a change and its record) leaves them: a tmpfs under the local
  cluster's folder, a `….before-disk-full` directory beside a node's
  data, a stopped node, an `--own-cluster` folder nobody runs, a chaos
  replica whose parent is gone.

A live run's changes are never touched: its ledger claims them.
"""

from __future__ import annotations

import os
import signal
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.chaos.ledger import dump_ledger, ledger_dir, ledger_owner, read_ledger
from pipeline.chaos.undo import (
    Undo,
    move_back,
    remove_cluster,
    stop_node,
    terminate,
    undo_newest_first,
    unmount,
)
from pipeline.dev.localkafka import LocalKafka
from pipeline.dev.process_table import (
    command_line,
    environment,
    is_same_process,
    is_stopped,
    mounts_under,
    pids,
    process_info,
)
from pipeline.paths import cache_dir

ASIDE_SUFFIX = ".before-disk-full"
OWN_CLUSTER_PREFIX = "pipeline-chaos-cluster-"
LEGACY_OWN_CLUSTER_PREFIX = "pipeline-chaos-"
"""What earlier versions named an own cluster's folder; swept only if it holds a cluster."""
REPLICA_PREFIX = "chaos-"
"""The topic prefix of every chaos run's replicas (pipeline.chaos.run)."""


@dataclass
class SweepReport:
    done: list[str] = field(default_factory=list)
    """What was undone, one line each."""
    problems: list[str] = field(default_factory=list)
    """What could not be, each with what to do; also kept in its ledger for the next sweep."""


@dataclass
class Claims:
    """What live runs hold: never swept."""

    paths: set[Path] = field(default_factory=set)
    pids: set[int] = field(default_factory=set)

    def add(self, change: Undo) -> None:
        for raw in (change.path, change.aside):
            if raw:
                self.paths.add(Path(os.path.realpath(raw)))
        if change.pid:
            self.pids.add(change.pid)

    def holds(self, path: Path) -> bool:
        real = Path(os.path.realpath(path))
        return any(
            real == p or real.is_relative_to(p) or p.is_relative_to(real) for p in self.paths
        )


def sweep(kafka_state: Path, ledgers: Path | None = None, temp: Path | None = None) -> SweepReport:
    ledgers = ledgers or ledger_dir()
    report = SweepReport()
    claims = _undo_dead_ledgers(ledgers, report)
    _attempt(report, lambda: _local_cluster_traces(kafka_state, claims))
    temp = temp or Path(tempfile.gettempdir())
    _attempt(report, lambda: _orphan_own_clusters(temp, ledgers, claims))
    _attempt(report, lambda: _orphan_replicas(claims))
    return report


def _attempt(report: SweepReport, step: Callable[[], list[str]]) -> None:
    try:
        report.done += step()
    except Exception as exc:  # noqa: BLE001 - reported to the user, and the other steps still run
        report.problems.append(str(exc))


def _undo_dead_ledgers(folder: Path, report: SweepReport) -> Claims:
    claims = Claims()
    if not folder.is_dir():
        return claims
    for path in sorted(folder.glob("*.json")):
        owner = ledger_owner(path)
        try:
            changes = read_ledger(path)
        except (OSError, ValueError, TypeError) as exc:
            report.problems.append(f"unreadable chaos ledger {path}: {exc}; remove it by hand")
            continue
        if owner is not None and is_same_process(*owner):
            for change in changes:
                claims.add(change)
            continue
        done, failed = undo_newest_first(changes)
        report.done += done
        report.problems += [f"{c.kind} {c.path or c.pid}: {exc}" for c, exc in failed]
        left = [change for change in changes if any(change is c for c, _ in failed)]
        for change in left:
            claims.add(change)
        if left:
            path.write_text(dump_ledger(left))
        else:
            path.unlink(missing_ok=True)
    return claims


def _local_cluster_traces(kafka_state: Path, claims: Claims) -> list[str]:
    """Mounts and moved-aside data in the project's own cluster, as an older run left them."""
    done: list[str] = []
    if not kafka_state.is_dir():
        return done
    state = LocalKafka(kafka_state, cache_dir()).load_state()
    for mount in mounts_under(kafka_state):
        if claims.holds(mount.point):
            continue
        for node in state.nodes if state else []:
            if Path(os.path.realpath(node.data_dir)).is_relative_to(mount.point) or (
                mount.point.is_relative_to(os.path.realpath(node.data_dir))
            ):
                done += stop_node(kafka_state, node.node_id)
        done += unmount(mount.point)
    for aside in sorted(kafka_state.glob(f"node-*/*{ASIDE_SUFFIX}")):
        original = aside.with_name(aside.name.removesuffix(ASIDE_SUFFIX))
        if not claims.holds(aside):
            done += move_back(original, aside)
    for node in state.nodes if state else []:
        if (
            node.pid is not None
            and node.pid not in claims.pids
            and is_stopped(node.pid)
            and node.config_file in command_line(node.pid)
        ):
            os.kill(node.pid, signal.SIGCONT)
            done.append(f"continued broker node {node.node_id} (pid {node.pid}), left stopped")
    return done


def _orphan_own_clusters(temp: Path, ledgers: Path, claims: Claims) -> list[str]:
    done: list[str] = []
    for folder in sorted(temp.glob(LEGACY_OWN_CLUSTER_PREFIX + "*")):
        if folder == ledgers or not folder.is_dir() or claims.holds(folder):
            continue
        ours = folder.name.startswith(OWN_CLUSTER_PREFIX)
        if ours or (folder / "cluster.json").exists() or (folder / "node-1").is_dir():
            done += remove_cluster(folder)
    return done


def _orphan_replicas(claims: Claims) -> list[str]:
    """`pipeline worker` processes of a chaos run whose parent died: adopted by init."""
    done: list[str] = []
    for pid in list(pids()):
        info = process_info(pid)
        if info is None or info.parent != 1 or pid in claims.pids:
            continue
        command = command_line(pid)
        if "worker" not in command or not any(part.endswith("pipeline") for part in command[:2]):
            continue
        prefix = environment(pid).get("PIPELINE_TOPIC_PREFIX", "")
        if prefix.startswith(REPLICA_PREFIX):
            done += terminate(pid, info.started, f"chaos replica of {prefix.rstrip('.')}")
    return done
