"""What a chaos run changes on the machine is undone however it ends: cleanly, by a signal,
or by SIGKILL (the next sweep). Real processes, real directories, and (as root) real tmpfs
mounts; no broker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.chaos.disk import refuse_unless_safe
from pipeline.chaos.ledger import Ledger, ledger_owner, read_ledger
from pipeline.chaos.sweep import sweep
from pipeline.chaos.undo import Undo
from pipeline.dev.localkafka import ClusterState, LocalKafka, NodeState
from pipeline.dev.process_table import (
    _unescape,
    is_mount_point,
    is_same_process,
    is_stopped,
    process_info,
)
from pipeline.errors import InfraError
from pipeline.paths import project_dir

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@pytest.fixture
def folders(tmp_path: Path) -> Iterator[dict[str, Path]]:
    made = {name: tmp_path / name for name in ("ledgers", "kafka", "temp", "work")}
    for folder in made.values():
        folder.mkdir()
    yield made
    for line in Path("/proc/mounts").read_text().splitlines():  # never leave a mount behind
        point = line.split(" ")[1]
        if point.startswith(str(tmp_path)):
            subprocess.run(["umount", "-l", point], check=False)


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "600"])


def mount_tmpfs(point: Path) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(point)], check=True)


def wait_gone(process: subprocess.Popen[bytes], timeout_s: float = 10) -> int:
    return process.wait(timeout=timeout_s)


def test_a_clean_close_undoes_every_change_newest_first(folders: dict[str, Path]) -> None:
    data = folders["work"] / "data"
    (data / "inner").mkdir(parents=True)
    aside = data.with_name("data.before-disk-full")
    child = sleeper()
    ledger = Ledger(folders["ledgers"])
    ledger.record(Undo.of_process(child.pid, "a sleeper"))
    ledger.record(Undo("moved", path=str(data), aside=str(aside)))
    data.rename(aside)
    data.mkdir()
    assert read_ledger(ledger.path)[1].aside == str(aside)
    os.kill(child.pid, signal.SIGSTOP)

    ledger.close()

    assert wait_gone(child) == -signal.SIGTERM, "a stopped child must be continued and stopped"
    assert (data / "inner").is_dir() and not aside.exists()
    assert not ledger.path.parent.exists(), "the ledger's folder goes with its last file"


def test_a_change_undone_another_way_is_forgotten_and_its_file_goes_with_the_last(
    folders: dict[str, Path],
) -> None:
    ledger = Ledger(folders["ledgers"])
    child = sleeper()
    change = ledger.record(Undo.of_process(child.pid, "a sleeper"))
    assert ledger.path.exists()
    ledger.forget(change)
    assert not ledger.path.exists()
    ledger.close()
    assert child.poll() is None, "a forgotten change must not be undone"
    child.kill()
    child.wait()


def test_one_failing_undo_does_not_stop_the_others_and_all_failures_are_raised(
    folders: dict[str, Path],
) -> None:
    data, aside = folders["work"] / "data", folders["work"] / "aside"
    data.mkdir()
    (data / "kept").write_text("x")
    aside.mkdir()
    child = sleeper()
    ledger = Ledger(folders["ledgers"])
    ledger.record(Undo.of_process(child.pid, "a sleeper"))
    ledger.record(Undo("moved", path=str(data), aside=str(aside)))  # both hold data: refused
    with pytest.raises(OSError, match=r"both .*data and .*aside hold data"):
        ledger.undo_since(0)
    assert wait_gone(child) == -signal.SIGTERM
    assert [change.kind for change in read_ledger(ledger.path)] == ["moved"]


def test_a_reused_pid_is_never_signalled(folders: dict[str, Path]) -> None:
    child = sleeper()
    started = process_info(child.pid)
    assert started is not None
    ledger = Ledger(folders["ledgers"])
    ledger.record(Undo("process", pid=child.pid, started=started.started + 1, what="not it"))
    ledger.close()
    assert child.poll() is None
    child.kill()
    child.wait()


OWNER = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    from pathlib import Path
    from pipeline.chaos.ledger import guarded
    from pipeline.chaos.undo import Undo

    work, ledgers, mount = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "mount"
    with guarded(ledgers) as ledger:
        child = subprocess.Popen(["sleep", "600"])
        ledger.record(Undo.of_process(child.pid, "the owner's sleeper"))
        os.kill(child.pid, signal.SIGSTOP)
        data, aside = work / "data", work / "data.before-disk-full"
        ledger.record(Undo("moved", path=str(data), aside=str(aside)))
        data.rename(aside)
        data.mkdir()
        if mount:
            ledger.record(Undo("mount", path=str(data)))
            tmpfs = ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(data)]
            subprocess.run(tmpfs, check=True)
            (data / "on-tmpfs").write_text("x")
        print(child.pid, flush=True)
        time.sleep(600)
    """
)


def start_owner(folders: dict[str, Path], mount: bool) -> tuple[subprocess.Popen[str], int]:
    (folders["work"] / "data" / "segment").mkdir(parents=True, exist_ok=True)
    owner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            OWNER,
            str(folders["work"]),
            str(folders["ledgers"]),
            "mount" if mount else "",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert owner.stdout is not None
    child_pid = int(owner.stdout.readline())
    return owner, child_pid


def child_gone(pid: int, timeout_s: float = 10) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = process_info(pid)
        if info is None or info.state == "Z":
            return True
        time.sleep(0.05)
    return False


@needs_root
def test_a_killed_runs_changes_are_undone_by_the_next_sweep(folders: dict[str, Path]) -> None:
    owner, child_pid = start_owner(folders, mount=True)
    data = folders["work"] / "data"
    assert is_mount_point(data) and is_stopped(child_pid)

    owner.kill()
    owner.wait()
    assert is_mount_point(data) and is_stopped(child_pid), "SIGKILL runs no cleanup"
    report = sweep(folders["kafka"], folders["ledgers"], folders["temp"])

    assert not report.problems
    assert not is_mount_point(data)
    assert (data / "segment").is_dir(), "the data directory is back"
    assert not (folders["work"] / "data.before-disk-full").exists()
    assert child_gone(child_pid), "the stopped child is continued and stopped"
    assert list(folders["ledgers"].glob("*")) == []
    assert any("unmounted the tmpfs" in line for line in report.done), report.done
    assert any("moved data.before-disk-full back" in line for line in report.done)


def test_sigterm_and_sighup_undo_the_changes_before_the_process_exits(
    folders: dict[str, Path],
) -> None:
    for sig in (signal.SIGTERM, signal.SIGHUP):
        owner, child_pid = start_owner(folders, mount=False)
        owner.send_signal(sig)
        assert owner.wait(timeout=30) == 128 + sig
        assert child_gone(child_pid)
        assert (folders["work"] / "data" / "segment").is_dir()
        assert list(folders["ledgers"].glob("*")) == []
        assert not (folders["work"] / "data.before-disk-full").exists()


@needs_root
def test_a_live_runs_changes_are_never_swept(folders: dict[str, Path]) -> None:
    point = folders["kafka"] / "node-1" / "data"
    point.mkdir(parents=True)
    ledger = Ledger(folders["ledgers"])
    ledger.record(Undo("mount", path=str(point)))
    mount_tmpfs(point)
    orphan = folders["temp"] / "pipeline-chaos-cluster-live"
    orphan.mkdir()
    ledger.record(Undo("cluster", path=str(orphan)))
    assert ledger_owner(ledger.path) == (os.getpid(), process_info(os.getpid()).started)  # type: ignore[union-attr]

    report = sweep(folders["kafka"], folders["ledgers"], folders["temp"])

    assert report.done == [] and report.problems == []
    assert is_mount_point(point) and orphan.is_dir()
    ledger.close()
    assert not is_mount_point(point) and not orphan.exists()


def local_cluster(kafka: Path) -> NodeState:
    node = NodeState(1, 9001, 9101, str(kafka / "node-1" / "data"), "c", "l", None, 1, 2)
    state = ClusterState("id", 1)
    state.nodes.append(node)
    LocalKafka(kafka, kafka / "cache")._save_state(state)
    return node


@needs_root
def test_an_older_runs_mount_and_moved_data_in_the_project_cluster_are_repaired(
    folders: dict[str, Path],
) -> None:
    node = local_cluster(folders["kafka"])
    data = Path(node.data_dir)
    aside = data.with_name("data.before-disk-full")
    (aside / "meta").mkdir(parents=True)
    data.mkdir()
    mount_tmpfs(data)

    report = sweep(folders["kafka"], folders["ledgers"], folders["temp"])

    assert not report.problems, report.problems
    assert not is_mount_point(data) and (data / "meta").is_dir() and not aside.exists()
    assert report.done == [
        f"unmounted the tmpfs at {data}",
        f"moved data.before-disk-full back to {data}",
    ]


def test_own_cluster_folders_nobody_runs_are_removed_and_nothing_else(
    folders: dict[str, Path],
) -> None:
    temp = folders["temp"]
    ours = temp / "pipeline-chaos-cluster-abc"
    (ours / "node-1" / "data").mkdir(parents=True)
    older = temp / "pipeline-chaos-xyz"
    local_cluster(older)
    unrelated = temp / "pipeline-chaos-notes"
    unrelated.mkdir()
    ledgers_lookalike = temp / "pipeline-chaos-ledgers-0"
    ledgers_lookalike.mkdir()
    (ledgers_lookalike / "1-2-ab.json").write_text(json.dumps([]))
    other = temp / "pipeline-kafka-123"
    (other / "node-1").mkdir(parents=True)

    report = sweep(folders["kafka"], ledgers_lookalike, temp)

    assert not ours.exists() and not older.exists()
    assert unrelated.is_dir() and other.is_dir() and ledgers_lookalike.is_dir()
    assert f"removed {ours}" in report.done and f"removed {older}" in report.done


def test_disk_full_refuses_a_cluster_inside_the_project_and_says_what_to_do(
    tmp_path: Path,
) -> None:
    if os.geteuid() != 0:
        with pytest.raises(InfraError, match="needs root"):
            refuse_unless_safe(tmp_path)
        return
    with pytest.raises(InfraError, match="run it with --own-cluster"):
        refuse_unless_safe(project_dir() / ".state" / "kafka")
    refuse_unless_safe(tmp_path)  # outside the project: allowed


def test_mount_points_are_read_with_the_kernels_escapes() -> None:
    assert _unescape(r"/tmp/a\040b\011c\134d") == "/tmp/a b\tc\\d"
    assert _unescape("/plain") == "/plain"


def test_the_process_table_tells_a_process_from_a_later_one_with_its_pid() -> None:
    child = sleeper()
    info = process_info(child.pid)
    assert info is not None and info.parent == os.getpid()
    assert is_same_process(child.pid, info.started)
    assert not is_same_process(child.pid, info.started + 1)
    child.kill()
    child.wait()
    assert not is_same_process(child.pid, info.started)
