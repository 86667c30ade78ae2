"""Poisons with two replicas as real processes on a real broker.

A record of 1,000 that hangs its handler: it ends in the DLQ as HandlerTimeout, the other
999 are output once and in order per key, the group's lag reaches 0, both replicas live
on. (That poison and 19 records of its key behind it are published once the 999 are
committed everywhere, so any duplicate would be the runtime's.)

A record that blocks the loop for ever, deep in a backlog, under `pipeline scale` on both
clients: quarantined within quarantine_after + 1 deaths, everything else output in order
per key, duplicates within what the dead replicas had taken and not committed. And the
supervisor's probe replacing a worker whose /healthz stops answering.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from collections import Counter, defaultdict
from pathlib import Path
from subprocess import Popen

import pytest

from pipeline.dev.process_table import command_line, environment, pids
from pipeline.dev.processes import pid_alive
from pipeline.kafka.aiokafka.probe import run_sync
from pipeline.kafka.connect import connect
from pipeline.kafka.partitioner import kafka_partition
from pipeline.paths import project_dir
from pipeline.wire.codec import header_value
from tests.integration.harness import Harness, keyed_events
from tests.integration.processors import SOURCE, Keyed
from tests.replicas import Replica, poll_until
from tests.support import PIPELINE, read_all

pytestmark = pytest.mark.integration

POISON_KEY = "k-poison"


def run_with_one_poison(harness: Harness, processor: str, mode: str) -> list[Replica]:
    replicas = [harness.start(processor, f"{processor}-{n}") for n in range(2)]
    for replica in replicas:
        replica.wait_ready()
    harness.publish(keyed_events(999, keys=50))
    harness.wait_drained(processor, 120)
    poison = Keyed(key=POISON_KEY, seq=0, mode=mode)
    # The poison's key has records after it too: they must wait for it, then go on in order.
    harness.publish([poison, *[Keyed(key=POISON_KEY, seq=n) for n in range(1, 20)]])
    harness.wait_drained(processor, 240)
    return replicas


def healthy(replica: Replica) -> bool:
    try:
        return replica.get("/healthz")[0] == 200
    except OSError:  # its loop is blocked: no answer yet
        return False


def check_the_outcome(harness: Harness, replicas: list[Replica], reason: str) -> str:
    dead = run_sync(read_all(connect(harness.settings), harness.dlq))
    assert len(dead) == 1, f"{len(dead)} dead letters\n{harness.diagnosis()}"
    [letter] = dead
    assert header_value(letter.headers, "dlq-error-type") == reason
    assert int(header_value(letter.headers, "dlq-source-partition") or -1) == kafka_partition(
        POISON_KEY.encode(), SOURCE.partitions
    )
    outputs = [handled for _, _, handled in harness.outputs()]
    seen = Counter((o.key, o.seq) for o in outputs)
    expected = {(e.key, e.seq) for e in keyed_events(999, keys=50)} | {
        (POISON_KEY, n) for n in range(1, 20)
    }
    assert set(seen) == expected
    assert max(seen.values()) == 1, f"{sum(c - 1 for c in seen.values())} duplicates"
    by_key: dict[str, list[int]] = defaultdict(list)
    for output in outputs:
        by_key[output.key].append(output.seq)
    assert all(seqs == sorted(seqs) for seqs in by_key.values())  # per-key order
    for replica in replicas:  # nobody exited, nobody restarting; the last owner the poison
        # blocked answers again once its sleep is over
        poll_until(lambda r=replica: healthy(r), 60, interval_s=1, what=f"{replica.replica_id}")
        assert replica.process.poll() is None, replica.tail(60)
    return header_value(letter.headers, "dlq-error-message") or ""


def test_a_record_that_hangs_its_handler_costs_only_itself(harness: Harness) -> None:
    replicas = run_with_one_poison(harness, "hangs", "hang")
    message = check_the_outcome(harness, replicas, "HandlerTimeout")
    assert "within its deadline of 1s" in message
    logs = "".join(replica.tail(400) for replica in replicas)
    assert "past its deadline of 1s on" in logs


BEHIND = 300
"""Records of the poison's partition before it: nothing is committed when the replicas
start, so the poison lies at least this far past the last commit."""


def supervise(harness: Harness, tmp_path: Path, processor: str, *args: str) -> Popen[bytes]:
    """`pipeline scale` with two replicas, deciding every second."""
    return Popen(
        [
            PIPELINE,
            "scale",
            processor,
            "--min",
            "2",
            "--max",
            "2",
            "--interval",
            "1s",
            "--log-dir",
            str(tmp_path / "workers"),
            *args,
        ],
        cwd=project_dir(),
        env={**os.environ, **harness.env},
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "supervisor.log", "wb"),
    )


def stop(supervisor: Popen[bytes]) -> None:
    supervisor.terminate()
    try:
        supervisor.wait(timeout=90)
    except subprocess.TimeoutExpired:
        supervisor.kill()
        supervisor.wait()


WATCHDOG = re.compile(
    r"in a handler: (?P<in_hand>[^;]*); (?P<uncommitted>\d+) record\(s\) taken and not committed"
)


@pytest.mark.parametrize(
    "client", ["aiokafka", pytest.param("confluent", marks=pytest.mark.full_size)]
)
def test_a_record_that_blocks_the_loop_for_ever_costs_at_most_k_plus_one_deaths(
    harness: Harness, tmp_path: Path, client: str
) -> None:
    """A backlog of 3,320 published before two replicas start under `pipeline scale` (its
    probe off: the worker's own watchdog ends a frozen replica); one record spins for ever
    on every delivery, 300 records past the last commit of its partition."""
    poison = Keyed(key=POISON_KEY, seq=BEHIND, mode="spin")
    ahead = [Keyed(key=POISON_KEY, seq=n) for n in range(BEHIND)]
    after = [Keyed(key=POISON_KEY, seq=n) for n in range(BEHIND + 1, BEHIND + 21)]
    harness.publish([*ahead, *keyed_events(3000, keys=60), poison, *after])
    records = run_sync(read_all(connect(harness.settings), harness.source.name))
    [spot] = [(r.partition, r.offset) for r in records if b"spin" in (r.value or b"")]
    assert spot[1] >= BEHIND
    supervisor = supervise(
        harness,
        tmp_path,
        "spins",
        "--no-health-probe",
        *("--worker-arg=--liveness-stall", "--worker-arg=4"),
        *("--worker-arg=--client", f"--worker-arg={client}"),
    )
    try:
        poll_until(lambda: harness.count(harness.dlq) >= 1, 300, interval_s=1, what="quarantine")
        harness.wait_drained("spins", 240)
    finally:
        stop(supervisor)
    supervisor_log = (tmp_path / "supervisor.log").read_text()
    deaths = len(re.findall(r"died \(exit 5\)", supervisor_log))
    last_words = [
        m
        for log in (tmp_path / "workers").glob("*.log")
        for m in WATCHDOG.finditer(log.read_text())
    ]
    print(f"{client}: {deaths} deaths; the watchdog's last words: {[m[0] for m in last_words]}")
    assert 1 <= deaths <= 4, f"{deaths} deaths for one poison (quarantine_after 3)"
    assert len(last_words) == deaths
    poison_at = f"{harness.source.name}-{spot[0]}@{spot[1]}"
    assert all(m["in_hand"] == poison_at for m in last_words), last_words
    dead = run_sync(read_all(connect(harness.settings), harness.dlq))
    assert [header_value(r.headers, "dlq-error-type") for r in dead] == ["Quarantined"]
    outputs = [handled for _, _, handled in harness.outputs()]
    seen = Counter((o.key, o.seq) for o in outputs)
    expected = {(e.key, e.seq) for e in [*ahead, *keyed_events(3000, keys=60), *after]}
    assert set(seen) == expected
    duplicates = sum(count - 1 for count in seen.values())
    # What a death makes the next owners redo is what the dead replica had taken and not
    # committed, which its watchdog counted as it died.
    bound = sum(int(m["uncommitted"]) for m in last_words)
    print(f"{client}: {duplicates} duplicates, bound {bound}")
    assert duplicates <= bound
    firsts: dict[str, list[int]] = defaultdict(list)
    for output in outputs:
        if output.seq not in firsts[output.key]:
            firsts[output.key].append(output.seq)
    assert all(seqs == sorted(seqs) for seqs in firsts.values())  # per-key order


def test_pipeline_scale_replaces_a_worker_whose_healthz_stops_answering(
    harness: Harness, tmp_path: Path
) -> None:
    """SIGSTOP: the process lives, its loop (and its own watchdog) stand still, /healthz
    answers nothing; the supervisor's probe kills it and a new worker takes its place."""
    supervisor = supervise(harness, tmp_path, "passthrough")
    try:
        worker_logs = tmp_path / "workers"
        poll_until(
            lambda: len(list(worker_logs.glob("*.log"))) == 2, 60, what="two workers started"
        )
        poll_until(
            lambda: supervisor_log(tmp_path).count("answers /healthz: probing it") == 2,
            60,
            what="both workers answering the probe",
        )
        frozen = min(worker_pids(harness.prefix))
        os.kill(frozen, signal.SIGSTOP)
        try:
            poll_until(
                lambda: "did not answer 3 times in a row" in supervisor_log(tmp_path),
                60,
                what="the probe's verdict",
            )
            poll_until(lambda: not pid_alive(frozen), 10, what="the frozen worker killed")
            poll_until(
                lambda: (
                    len(worker_pids(harness.prefix)) == 2
                    and frozen not in worker_pids(harness.prefix)
                ),
                60,
                what="a new worker in its place",
            )
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(frozen, signal.SIGKILL)
        harness.publish(keyed_events(200, keys=20))
        harness.wait_outputs(200, timeout_s=120)
    finally:
        stop(supervisor)
    assert "died (exit -9); replacing it" in supervisor_log(tmp_path)


def supervisor_log(tmp_path: Path) -> str:
    return (tmp_path / "supervisor.log").read_text()


def worker_pids(prefix: str) -> list[int]:
    """`pipeline worker` processes of this test (its topic prefix), by /proc."""
    return sorted(
        pid
        for pid in pids()
        if environment(pid).get("PIPELINE_TOPIC_PREFIX") == prefix and "worker" in command_line(pid)
    )
