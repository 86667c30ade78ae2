"""Scenario disk-full: one broker's log directory runs out of space, then is grown back.

Made honest with a size-capped tmpfs: the broker leading most input
partitions is stopped cleanly, its log directory moved onto a tmpfs with
64 MB to spare, and started again; a filler topic (RF 3, so on every
broker) then takes that space. Kafka stops a broker whose only log
directory fails, so this becomes a crash the cluster must ride out, with
the broker's data left on the full disk. The operator's fix follows: the
filesystem is grown (a tmpfs resizes in place) and the broker started.
Mounting needs root; without it the scenario refuses and says so. It
also refuses a cluster whose data lives inside the project's checkout
(`pipeline infra up`'s, under .state/): a mount left there by a killed run
would make `rm -rf .state` fail; `--own-cluster` keeps it in /tmp. Each
change (data moved aside, the mount, the restarted broker on it) is
recorded in the run's ledger before it is made (pipeline.chaos.ledger),
so a killed run's next sweep undoes it. The node gets its own directory
back at the end (stale by then: it catches up from the leaders, as any
broker back from a long absence does).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.catalogue import TopicSpec
from pipeline.chaos.checking import TableRow
from pipeline.chaos.run import ChaosRun
from pipeline.chaos.sweep import ASIDE_SUFFIX
from pipeline.chaos.undo import Undo
from pipeline.dev.processes import pid_alive
from pipeline.errors import InfraError
from pipeline.kafka.aiokafka.probe import run_sync
from pipeline.kafka.connect import connect
from pipeline.ops.topics import ensure_topics
from pipeline.paths import project_dir
from pipeline.publishing.producer import EventProducer


@dataclass(frozen=True)
class DiskChanges:
    """What disk-full changed, each recorded in the run's ledger, in the order to undo them."""

    node_id: int
    broker_on_tmpfs: Undo
    mount: Undo
    moved: Undo


HEADROOM_MB = 64
FILLER_RECORD_BYTES = 256 * 1024
"""About: the padding is the key, which the value repeats."""
GROWN_MB = 2048


def refuse_unless_safe(cluster_dir: Path) -> None:
    """disk-full's precheck: root, and a cluster whose data lies outside the project."""
    if os.geteuid() != 0:
        raise InfraError(
            "disk-full mounts a size-capped tmpfs as a broker's log directory, which needs "
            "root; run it as root or leave it out (--scenario ...)"
        )
    project = Path(os.path.realpath(project_dir()))
    if Path(os.path.realpath(cluster_dir)).is_relative_to(project):
        raise InfraError(
            f"disk-full mounts a tmpfs over a broker's log directory, and this cluster's data "
            f"lives inside the project ({cluster_dir}), where a mount left behind would block "
            "`rm -rf .state` and `make clean`; run it with --own-cluster (a cluster of its own "
            "in a temporary folder), or leave it out (--scenario ...)"
        )


def disk_full(run: ChaosRun) -> None:
    cluster = run.cluster
    refuse_unless_safe(cluster.kafka.state_dir)
    node_id = cluster.leader_of_most(run.input.name)
    node = next(n for n in cluster.state.nodes if n.node_id == node_id)
    data = Path(node.data_dir)
    aside = data.with_name(data.name + ASIDE_SUFFIX)
    cluster.kill(node_id, signal.SIGTERM)
    used_mb = _size_mb(data)
    moved = run.ledger.record(Undo("moved", path=str(data), aside=str(aside)))
    data.rename(aside)
    data.mkdir()
    mount = run.ledger.record(Undo("mount", path=str(data)))
    _mount(data, int(used_mb) + HEADROOM_MB)
    shutil.copytree(aside, data, dirs_exist_ok=True)
    on_tmpfs = run.ledger.record(Undo("node", path=str(cluster.kafka.state_dir), node_id=node_id))
    run.extra_objects["disk"] = DiskChanges(node_id, on_tmpfs, mount, moved)
    cluster.restart(node_id)
    run.wait_until(lambda: not cluster.out_of_sync([run.input.name]), 180, "back in sync")
    run.mark_fault(f"broker {node_id}'s log directory fills ({HEADROOM_MB} MB to spare)")
    filler = Filler(run)
    filler.start()
    pid = next(n.pid for n in cluster.state.nodes if n.node_id == node_id)
    try:
        stopped = run.wait_until(
            lambda: not pid_alive(pid), 240, f"broker {node_id} stopping on its full disk"
        )
    finally:
        filler.stop()
    run.extra["broker_stopped_after_s"] = round(stopped, 1)
    run.wait(10.0)
    run.mark_fault(f"broker {node_id}'s disk grown to {GROWN_MB} MB, broker restarted")
    _mount(data, GROWN_MB, remount=True)
    cluster.restart(node_id)
    topics = [run.input.name, run.output.name]
    run.wait_until(lambda: not cluster.out_of_sync(topics), 240, "every partition back in sync")


def give_the_disk_back(run: ChaosRun) -> None:
    """The node's own directory back, the tmpfs gone; the filler left to retention."""
    changes = run.extra_objects.pop("disk", None)
    if not isinstance(changes, DiskChanges):
        return  # nothing was changed, or the run's ledger undoes a half-made change
    for change in (changes.broker_on_tmpfs, changes.mount, changes.moved):
        run.ledger.settle(change)
    run.cluster.restart(changes.node_id)
    deadline = time.monotonic() + 240
    while run.cluster.out_of_sync([run.input.name]) and time.monotonic() < deadline:
        time.sleep(1)


class Filler:
    """Large records to a topic on every broker, from a thread, until stopped."""

    def __init__(self, run: ChaosRun) -> None:
        self.run = run
        self.topic = TopicSpec(
            run.prefix + "chaos.filler",
            TableRow,
            "key",
            partitions=3,
            replication_factor=3,
            min_insync_replicas=2,
            retention_ms=60_000,
            dlq=False,
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: run_sync(self._fill()), daemon=True)

    def start(self) -> None:
        run_sync(ensure_topics(connect(self.run.cluster.settings), [self.topic]))
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(120)

    async def _fill(self) -> None:
        padding = "x" * (FILLER_RECORD_BYTES // 2)
        async with EventProducer(self.run.cluster.settings) as producer:
            n = 0
            while not self._stop.is_set() and n * FILLER_RECORD_BYTES < 4 * HEADROOM_MB << 20:
                rows = [TableRow(key=f"{padding}{i}", version=i) for i in range(n, n + 4)]
                try:
                    await producer.publish_many(self.topic, rows)
                except Exception:  # noqa: BLE001 - the full broker is being fenced: go on
                    continue
                n += len(rows)


def _size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / (1 << 20)


def _mount(path: Path, size_mb: int, remount: bool = False) -> None:
    options = f"remount,size={size_mb}m" if remount else f"size={size_mb}m"
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise InfraError(f"mounting a {size_mb} MB tmpfs at {path} failed: {result.stderr}")
