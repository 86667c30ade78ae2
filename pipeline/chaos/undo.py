"""Undoing one recorded change, whoever recorded it: the run itself, or a later sweep.

Each undo is safe to repeat and to run on a change that was only half
made (recorded, then killed before the change): it looks before it acts,
and says what it did in a line a user can read.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pipeline.dev.localkafka import LocalKafka, NodeState
from pipeline.dev.process_table import (
    command_line,
    is_mount_point,
    is_same_process,
    mounts_under,
    start_time,
)
from pipeline.errors import InfraError
from pipeline.paths import cache_dir

UndoKind = Literal["cluster", "process", "mount", "moved", "node"]


@dataclass(frozen=True)
class Undo:
    """One change to the machine and what undoing it needs.

    - cluster: a local cluster of the run's own in `path`: its nodes stopped, the folder removed.
    - process: a child (`pid` started at `started`): continued if stopped, then terminated.
    - mount: a tmpfs at `path`: unmounted (lazily if busy).
    - moved: a directory `path` moved to `aside`: put back.
    - node: node `node_id` of the cluster whose state is in `path`: stopped before its disk is.
    """

    kind: UndoKind
    path: str = ""
    aside: str = ""
    pid: int = 0
    started: int = 0
    """The process's start time (/proc/PID/stat), so a reused pid is never signalled."""
    node_id: int = 0
    what: str = ""

    @staticmethod
    def of_process(pid: int, what: str) -> Undo:
        return Undo("process", pid=pid, started=start_time(pid) or 0, what=what)


GRACE_S = 30.0
"""A chaos replica gives up draining after its 20 s drain deadline; a broker stops in seconds."""


def undo_newest_first(changes: list[Undo]) -> tuple[list[str], list[tuple[Undo, Exception]]]:
    """Every change undone, newest first, each tried even when one before it failed.

    Processes recorded one after another are stopped together (each may
    take its drain deadline); returns what was done and what failed.
    """
    done: list[str] = []
    failed: list[tuple[Undo, Exception]] = []
    pending = list(reversed(changes))
    while pending:
        batch = [pending.pop(0)]
        while batch[0].kind == "process" and pending and pending[0].kind == "process":
            batch.append(pending.pop(0))
        try:
            if len(batch) > 1:
                done += terminate_all([(c.pid, c.started, c.what) for c in batch])
            else:
                done += undo(batch[0])
        except Exception as exc:  # noqa: BLE001 - the rest are still undone; the caller reports
            failed += [(change, exc) for change in batch]
    return done, failed


def undo(change: Undo) -> list[str]:
    if change.kind == "cluster":
        return remove_cluster(Path(change.path))
    if change.kind == "process":
        return terminate(change.pid, change.started, change.what or f"process {change.pid}")
    if change.kind == "mount":
        return unmount(Path(change.path))
    if change.kind == "moved":
        return move_back(Path(change.path), Path(change.aside))
    if change.kind == "node":
        return stop_node(Path(change.path), change.node_id)
    raise InfraError(f"unknown change kind {change.kind!r} in a chaos ledger")


def terminate(pid: int, started: int, what: str, grace_s: float = GRACE_S) -> list[str]:
    return terminate_all([(pid, started, what)], grace_s)


def terminate_all(processes: list[tuple[int, int, str]], grace_s: float = GRACE_S) -> list[str]:
    """Each continued if stopped (a stopped process never acts on SIGTERM), then SIGTERM;
    SIGKILL for any still there after `grace_s`. All are signalled before any is waited for."""
    alive = [(pid, started, what) for pid, started, what in processes if pid]
    alive = [p for p in alive if is_same_process(p[0], p[1])]
    for pid, _, _ in alive:
        _signal(pid, signal.SIGCONT)
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(is_same_process(p, s) for p, s, _ in alive):
        time.sleep(0.05)
    done = []
    for pid, started, what in alive:
        if not is_same_process(pid, started):
            done.append(f"stopped {what} (pid {pid})")
            continue
        _signal(pid, signal.SIGKILL)
        while is_same_process(pid, started) and time.monotonic() < deadline + 10:
            time.sleep(0.05)
        done.append(f"killed {what} (pid {pid}): still running {grace_s:.0f}s after SIGTERM")
    return done


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # gone in between: nothing left to stop
        os.kill(pid, sig)


def unmount(point: Path) -> list[str]:
    """A plain unmount, or a lazy one where the mount is still busy (a process inside it)."""
    if not is_mount_point(point):
        return []
    plain = subprocess.run(["umount", str(point)], capture_output=True, text=True, check=False)
    if plain.returncode == 0:
        return [f"unmounted the tmpfs at {point}"]
    lazy = subprocess.run(["umount", "-l", str(point)], capture_output=True, text=True, check=False)
    if lazy.returncode != 0:
        raise InfraError(
            f"could not unmount {point}: {plain.stderr.strip()}; lazily: {lazy.stderr.strip()}. "
            f"Unmount it as root (`umount -l {point}`)."
        )
    return [f"unmounted the tmpfs at {point} lazily ({plain.stderr.strip()})"]


def move_back(path: Path, aside: Path) -> list[str]:
    """The directory's own data back where it was; the empty mount point it left removed."""
    if not aside.exists():
        return []
    if is_mount_point(path):
        raise InfraError(f"{path} is still a mount point; unmount it before moving {aside} back")
    if path.exists():
        if any(path.iterdir()):
            raise InfraError(
                f"both {path} and {aside} hold data; {aside} is the original: move {path} "
                f"elsewhere and rename {aside} to {path.name}"
            )
        path.rmdir()
    aside.rename(path)
    return [f"moved {aside.name} back to {path}"]


def stop_node(state_dir: Path, node_id: int) -> list[str]:
    state = LocalKafka(state_dir, cache_dir()).load_state()
    if state is None:
        return []
    node = next((n for n in state.nodes if n.node_id == node_id), None)
    if node is None:
        return []
    return terminate_all(_node_process(node, f"broker node {node_id} of {state.bootstrap}"))


def _node_process(node: NodeState, what: str) -> list[tuple[int, int, str]]:
    """Only the broker started with this node's config: cluster.json keeps no start time."""
    if node.pid is None or node.config_file not in command_line(node.pid):
        return []
    return [(node.pid, start_time(node.pid) or 0, what)]


def remove_cluster(folder: Path) -> list[str]:
    """A run's own cluster: every node stopped, every mount inside it undone, the folder gone."""
    if not folder.exists():
        return []
    state = LocalKafka(folder, cache_dir()).load_state()
    nodes = [
        process
        for node in (state.nodes if state else [])
        for process in _node_process(node, f"broker node {node.node_id} in {folder}")
    ]
    done = terminate_all(nodes)
    for mount in mounts_under(folder):
        done += unmount(mount.point)
    shutil.rmtree(folder)
    return [*done, f"removed {folder}"]
