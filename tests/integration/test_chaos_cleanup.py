"""A chaos run killed with SIGKILL mid-fault leaves nothing behind once the next command ran.

Real `pipeline chaos run` processes, real brokers, a real tmpfs. The run is
killed at the worst moment (the tmpfs mounted over a broker's data; a
replica stopped with SIGSTOP); then the next command (`pipeline chaos run`,
`pipeline infra up`) must find and undo what it left. What is checked is
read from the OS (/proc), not from the run's own ledger.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.dev.localkafka import LocalKafka
from pipeline.dev.process_table import command_line, environment, is_stopped, mounts, pids
from tests.support import PIPELINE, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def isolated_env(tmp_path: Path) -> dict[str, str]:
    """Its own temp folder, ledgers and project state: what is found there is this test's."""
    temp = tmp_path / "tmp"
    temp.mkdir(exist_ok=True)
    return {
        **os.environ,
        "TMPDIR": str(temp),
        "PIPELINE_CHAOS_LEDGER_DIR": str(tmp_path / "ledgers"),
        "PIPELINE_STATE_DIR": str(tmp_path / "state"),
        "PIPELINE_CACHE_DIR": str(Path(os.environ.get("PIPELINE_CACHE_DIR", ".state/cache"))),
        "COLUMNS": "200",
    }


def start_chaos(env: dict[str, str], tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    log = open(tmp_path / "chaos.log", "ab")  # noqa: SIM115 - handed to the child
    return subprocess.Popen(
        [
            PIPELINE,
            "chaos",
            "run",
            "--warmup",
            "3",
            "--rate",
            "100",
            "--log-dir",
            str(tmp_path / "logs"),
            *args,
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # SIGKILL reaches it alone, as `kill -9 PID` would
    )


def wait_for(
    what: str, check: Callable[[], bool], chaos: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + 240
    while not check():
        if chaos.poll() is not None:
            pytest.fail(
                f"chaos exited ({chaos.returncode}) before {what}:\n{log.read_text()[-3000:]}"
            )
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within 240 s:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def tmpfs_under(folder: Path) -> list[Path]:
    return [m.point for m in mounts() if m.fstype == "tmpfs" and m.point.is_relative_to(folder)]


def replicas_of(prefix: str) -> list[int]:
    found = []
    for pid in pids():
        if environment(pid).get("PIPELINE_TOPIC_PREFIX", "").startswith(prefix):
            found.append(pid)
    return found


def processes_naming(folder: Path) -> list[int]:
    return [pid for pid in pids() if any(str(folder) in part for part in command_line(pid))]


@pytest.mark.skipif(os.geteuid() != 0, reason="disk-full mounts a tmpfs, which needs root")
def test_a_run_killed_with_the_tmpfs_mounted_is_undone_by_the_next_chaos_run(
    tmp_path: Path,
) -> None:
    env = isolated_env(tmp_path)
    temp = Path(env["TMPDIR"])
    chaos = start_chaos(env, tmp_path, "--own-cluster", "--scenario", "disk-full")
    try:
        wait_for(
            "tmpfs over a broker's data",
            lambda: bool(tmpfs_under(temp)),
            chaos,
            tmp_path / "chaos.log",
        )
        (folder,) = list(temp.glob("pipeline-chaos-cluster-*"))
        (mounted,) = tmpfs_under(temp)
        assert mounted.is_relative_to(folder)
        os.kill(chaos.pid, signal.SIGKILL)
        chaos.wait()
        assert tmpfs_under(temp) and folder.is_dir(), "SIGKILL ran no cleanup"
        assert processes_naming(folder), "the run's brokers outlive it"
        assert replicas_of("chaos-disk-full-"), "the run's replicas outlive it"

        # The next command: no cluster of the project's own, so it stops after the sweep.
        after = run_cli("chaos", "run", "--scenario", "frozen-replica", env=env, timeout=180)

        assert after.returncode != 0 and "no local cluster" in after.stderr, after.stderr
        assert "cleaned up after a killed chaos run" in after.stderr
        assert f"moved data.before-disk-full back to {mounted}" in after.stderr, after.stderr
        assert tmpfs_under(temp) == []
        assert not folder.exists(), "the run's temporary folder is gone"
        assert processes_naming(folder) == [], "no broker of the run left running"
        assert replicas_of("chaos-disk-full-") == [], "no replica of the run left running"
        assert list((tmp_path / "ledgers").glob("*.json")) == []
    finally:
        if chaos.poll() is None:
            chaos.kill()
        run_cli("chaos", "sweep", env=env)


def test_a_run_killed_with_a_replica_stopped_leaves_no_process_once_infra_up_ran(
    tmp_path: Path, three_brokers: LocalKafka
) -> None:
    three_brokers.up(brokers=3)  # restarts a node an earlier test left dead
    env = isolated_env(tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    (state / "kafka").symlink_to(three_brokers.state_dir)  # the project's cluster is the tests'
    chaos = start_chaos(env, tmp_path, "--scenario", "frozen-replica")
    try:
        wait_for(
            "a replica stopped with SIGSTOP",
            lambda: any(is_stopped(pid) for pid in replicas_of("chaos-frozen-replica-")),
            chaos,
            tmp_path / "chaos.log",
        )
        os.kill(chaos.pid, signal.SIGKILL)
        chaos.wait()
        left = replicas_of("chaos-frozen-replica-")
        assert len(left) == 3 and any(is_stopped(pid) for pid in left)

        after = run_cli("infra", "up", "--brokers", "3", env=env, timeout=180)

        assert after.returncode == 0, after.stderr
        assert after.stderr.count("stopped chaos replica") == 3, after.stderr
        assert replicas_of("chaos-frozen-replica-") == [], "no replica left, stopped or running"
        assert list((tmp_path / "ledgers").glob("*.json")) == []
    finally:
        if chaos.poll() is None:
            chaos.kill()
        for pid in replicas_of("chaos-frozen-replica-"):
            os.kill(pid, signal.SIGKILL)
