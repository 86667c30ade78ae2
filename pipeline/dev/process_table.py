"""Linux's process and mount tables, read from /proc: what a cleanup needs to find its own.

A pid alone can be reused once its process is gone, so a process is
named by pid and start time; a mount point is read as the kernel writes
it (octal escapes for spaces and the like).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    parent: int
    state: str
    """R running, S sleeping, T stopped (SIGSTOP), Z zombie, …"""
    started: int
    """Clock ticks after boot; with the pid, names the process for good."""


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name sits in parentheses and may itself hold spaces or parentheses.
    return raw[raw.rindex(")") + 2 :].split()


def process_info(pid: int) -> ProcessInfo | None:
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return ProcessInfo(pid, int(fields[1]), fields[0], int(fields[19]))


def start_time(pid: int) -> int | None:
    info = process_info(pid)
    return None if info is None else info.started


def is_same_process(pid: int, started: int) -> bool:
    """Alive, not a zombie, and the very process recorded (not a later one with its pid)."""
    info = process_info(pid)
    return info is not None and info.state != "Z" and (not started or info.started == started)


def is_stopped(pid: int) -> bool:
    info = process_info(pid)
    return info is not None and info.state in ("T", "t")


def pids() -> Iterator[int]:
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            yield int(entry.name)


def command_line(pid: int) -> list[str]:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def environment(pid: int) -> dict[str, str]:
    try:
        raw = (PROC / str(pid) / "environ").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return {}
    pairs = (part.decode(errors="replace").partition("=") for part in raw.split(b"\0") if part)
    return {name: value for name, _, value in pairs}


@dataclass(frozen=True)
class Mount:
    source: str
    point: Path
    fstype: str


def _unescape(field: str) -> str:
    """/proc/mounts writes space, tab, newline and backslash as \\ooo."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts() -> list[Mount]:
    lines = (PROC / "mounts").read_text().splitlines()
    found = []
    for line in lines:
        source, point, fstype, *_ = line.split(" ")
        found.append(Mount(_unescape(source), Path(_unescape(point)), fstype))
    return found


def mounts_under(folder: Path) -> list[Mount]:
    """Mounts at or below `folder`, deepest first (the order to unmount them in)."""
    root = Path(os.path.realpath(folder))
    under = [m for m in mounts() if m.point == root or m.point.is_relative_to(root)]
    return sorted(under, key=lambda m: len(m.point.parts), reverse=True)


def is_mount_point(path: Path) -> bool:
    real = Path(os.path.realpath(path))
    return any(m.point == real for m in mounts())
