"""One chaos scenario, start to verdict: replicas, a steady load, the fault, the drain.

The run is what an orchestrator and an on-call engineer would see: three
replicas of the checking processor (pipeline.chaos.checking) as real
processes, restarted when they exit (each exit is counted: a crash loop
shows), the group's commits sampled every second (a commit that goes
back is a zombie's or a reset's), then, once the group has committed
everything, the topics read back and judged (pipeline.chaos.verdict).
"""

from __future__ import annotations

import logging
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.chaos.checking import (
    EXACTLY_ONCE_PROCESSOR,
    INPUT,
    OUTPUT,
    PROCESSOR,
    STATEFUL_EXACTLY_ONCE_PROCESSOR,
    STATEFUL_PROCESSOR,
    TABLE_TOPIC,
    TOPICS,
)
from pipeline.chaos.cluster import ChaosCluster
from pipeline.chaos.ledger import Ledger, ledger_dir
from pipeline.chaos.load import LoadFigures, SteadyLoad
from pipeline.chaos.readback import read_run
from pipeline.chaos.undo import Undo
from pipeline.chaos.verdict import OutputRecord, Verdict, judge
from pipeline.errors import PipelineError
from pipeline.kafka.aiokafka.probe import run_sync
from pipeline.kafka.connect import connect
from pipeline.ops.topics import ensure_topics
from pipeline.reading.offsets import committed_offsets, end_offsets
from pipeline.scaling.worker_process import WorkerProcess

log = logging.getLogger("pipeline.chaos")

SAMPLE_S = 1.0


@dataclass
class RunOptions:
    rate: int = 400
    """Events per second the load offers, over `keys` keys."""
    keys: int = 200
    replicas: int = 3
    warmup_s: float = 15.0
    settle_s: float = 30.0
    """Load after the fault ends: the time the output has to come back."""
    drain_timeout_s: float = 180.0
    bounces: int = 5
    """Broker bounces in the bounce scenarios."""
    frozen_s: float = 25.0
    """How long frozen-replica keeps a worker stopped: past its 10 s session timeout."""
    blocked_s: float = 15.0
    """How long blocked-loop's handler blocks its worker's event loop."""
    client: str = "aiokafka"
    exactly_once: bool = False
    """Run the checking processor with Kafka transactions; outputs are read committed."""
    stateful: bool = False
    """Run the checker that also counts each key's events in a store (lanes=1, a standby):
    the verdict then checks no count was lost (or, exactly-once, repeated)."""
    log_dir: Path = Path("chaos-logs")

    @property
    def processor(self) -> str:
        if self.stateful:
            return STATEFUL_EXACTLY_ONCE_PROCESSOR if self.exactly_once else STATEFUL_PROCESSOR
        return EXACTLY_ONCE_PROCESSOR if self.exactly_once else PROCESSOR


@dataclass
class ScenarioResult:
    name: str
    verdict: Verdict
    load: LoadFigures
    faults_at: list[float]
    replica_exits: list[str]
    commit_regressions: list[str]
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    def figures(self) -> dict[str, Any]:
        v = self.verdict
        return {
            "events_in": v.events_in,
            "outputs": v.outputs,
            "lost": v.lost,
            "duplicates": v.duplicates,
            "order_violations": v.order_violations,
            "dead_letters": v.dead_letters,
            "max_gap_s": round(v.max_gap_s, 2),
            "recovery_s": round(v.recovery_s, 2),
            **(
                {"counts_behind": v.counts_behind, "counts_ahead": v.counts_ahead}
                if v.counted
                else {}
            ),
            "recovered": v.recovered,
            "replica_exits": len(self.replica_exits),
            "commit_regressions": len(self.commit_regressions),
            "unacknowledged_sends": self.load.failed,
            "seconds": round(self.seconds, 1),
            **self.extra,
        }


class ChaosRun:
    """What a scenario's fault acts on, and the bookkeeping it leaves behind."""

    def __init__(
        self, cluster: ChaosCluster, name: str, options: RunOptions, ledger: Ledger
    ) -> None:
        self.cluster = cluster
        self.ledger = ledger
        """Where each change to the machine is recorded before it is made (replicas, mounts)."""
        self.name = name
        self.options = options
        self.prefix = f"chaos-{name}-{secrets.token_hex(3)}."
        self.settings = cluster.settings.model_copy(update={"topic_prefix": self.prefix})
        self.input = INPUT.with_name(self.prefix + INPUT.name)
        self.output = OUTPUT.with_name(self.prefix + OUTPUT.name)
        self.table_topic = TABLE_TOPIC.with_name(self.prefix + TABLE_TOPIC.name)
        self.group = self.prefix + options.processor
        self.log_dir = options.log_dir / self.prefix.rstrip(".")
        self.replicas: dict[str, WorkerProcess] = {}
        self._recorded: dict[str, Undo] = {}
        self.held: set[str] = set()
        """Replicas stopped on purpose: not restarted by the supervision."""
        self.killed: set[str] = set()
        """Replicas the scenario killed: restarted, but their exit is not a failure."""
        self.through_proxy: set[str] = set()
        self.load = SteadyLoad(cluster.settings, self.input, options.rate, options.keys)
        self.faults_at: list[float] = []
        self.baseline_until: float | None = None
        """The output rate to recover to is that before this time (default: the first fault)."""
        self.replica_exits: list[str] = []
        self.commit_regressions: list[str] = []
        self.extra: dict[str, Any] = {}
        """Figures of the scenario's own, reported with the verdict's."""
        self.extra_objects: dict[str, object] = {}
        """What a scenario's prepare hands its fault and its cleanup (a proxy)."""
        self._commits: dict[int, int] = {}
        self._next_sample = 0.0

    # -- replicas ------------------------------------------------------------------------

    def start_replica(self, replica_id: str) -> WorkerProcess:
        bootstrap = (
            self.cluster.state.proxy_bootstrap
            if replica_id in self.through_proxy
            else self.cluster.state.bootstrap
        )
        env = {
            "PIPELINE_BOOTSTRAP_SERVERS": bootstrap,
            "PIPELINE_TOPIC_PREFIX": self.prefix,
            "PIPELINE_PROCESSORS_MODULE": "pipeline.chaos.checking",
            "PIPELINE_CLIENT": self.options.client,
        }
        replica = WorkerProcess(
            self.options.processor,
            replica_id,
            env,
            self.log_dir / f"{replica_id}.log",
            "--drain-deadline",
            "20",
            # Its own disk, kept across its restarts (a stateful checker restores the tail).
            "--store-dir",
            str(self.log_dir / replica_id / "stores"),
        )
        self._forget_replica(replica_id)
        self._recorded[replica_id] = self.ledger.record(
            Undo.of_process(replica.process.pid, f"chaos replica {replica_id} of {self.group}")
        )
        self.replicas[replica_id] = replica
        self.held.discard(replica_id)
        return replica

    def start_all(self) -> None:
        for index in range(self.options.replicas):
            self.start_replica(f"r{index + 1}")
        for replica in self.replicas.values():
            replica.wait_ready(120)

    def stop_replica(self, replica_id: str, grace_s: float = 60) -> int:
        """SIGTERM, as an orchestrator scaling down would; not restarted until asked."""
        self.held.add(replica_id)
        code = self.replicas[replica_id].stop(grace_s)
        self._forget_replica(replica_id)
        return code

    def stop_all(self) -> None:
        """Every replica stopped; an exit that was not asked for is counted."""
        for replica_id, replica in self.replicas.items():
            code = replica.stop(60) if replica.running else replica.process.returncode
            self._forget_replica(replica_id)
            if code not in (0, None) and replica_id not in self.held:
                self.replica_exits.append(f"{replica_id} exit {code} at the end")

    def _forget_replica(self, replica_id: str) -> None:
        recorded = self._recorded.pop(replica_id, None)
        if recorded is not None:
            self.ledger.forget(recorded)

    def signal_replica(self, replica_id: str, sig: int) -> None:
        if sig == signal.SIGKILL:
            self.killed.add(replica_id)
        self.replicas[replica_id].signal(sig)

    def mark_fault(self, what: str) -> None:
        self.faults_at.append(time.time())
        log.info("%s: fault %d: %s", self.name, len(self.faults_at), what)

    # -- waiting, with supervision -------------------------------------------------------

    def wait(self, seconds: float) -> None:
        """Let time pass while restarting exited replicas and sampling the group's commits."""
        deadline = time.monotonic() + seconds
        while True:
            self._supervise()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.5, left))

    def wait_until(self, condition: Callable[[], bool], timeout_s: float, what: str) -> float:
        started = time.monotonic()
        while not condition():
            if time.monotonic() - started > timeout_s:
                raise PipelineError(f"chaos {self.name}: {what} not within {timeout_s:.0f}s")
            self.wait(1.0)
        return time.monotonic() - started

    def _supervise(self) -> None:
        for replica_id, replica in list(self.replicas.items()):
            if replica_id in self.held or replica.running:
                continue
            code = replica.process.returncode
            if replica_id in self.killed:
                self.killed.discard(replica_id)
            else:
                self.replica_exits.append(f"{replica_id} exit {code}")
                log.warning(
                    "%s: replica %s exited (%s); restarting it", self.name, replica_id, code
                )
            replica.wait(5)  # closes its log
            self.start_replica(replica_id)
        if time.monotonic() >= self._next_sample:
            self._next_sample = time.monotonic() + SAMPLE_S
            self._sample_commits()

    def _sample_commits(self) -> None:
        try:
            commits = run_sync(
                committed_offsets(connect(self.cluster.settings), self.group, self.input.name)
            )
        except Exception as exc:  # noqa: BLE001 - a broker may be down: sampled next second
            log.debug("commit sample failed: %s", exc)
            return
        for partition, offset in commits.items():
            before = self._commits.get(partition, -1)
            if offset < before:
                self.commit_regressions.append(f"partition {partition}: {before} -> {offset}")
            self._commits[partition] = max(before, offset)

    def drained(self) -> bool:
        clients = connect(self.cluster.settings)
        try:
            ends = run_sync(end_offsets(clients, self.input.name))
            commits = run_sync(committed_offsets(clients, self.group, self.input.name))
        except Exception:  # noqa: BLE001 - asked again next second
            return False
        return all(commits.get(p, 0) >= end for p, end in ends.items())


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    inject: Callable[[ChaosRun], None]
    """The fault, while the load runs; calls `run.mark_fault` when it strikes."""
    precheck: Callable[[Path], None] | None = None
    """Given the folder of the cluster's data, before any scenario runs: raises if this
    scenario must not run there (so `--all` stops before it starts, not halfway)."""
    prepare: Callable[[ChaosRun], None] | None = None
    """Before the replicas start (a proxy to route one through)."""
    cleanup: Callable[[ChaosRun], None] | None = None
    assess: Callable[[ChaosRun, list[OutputRecord]], dict[str, Any]] | None = None
    """Figures of its own, from the outputs (who published what, when)."""


def run_scenario(
    cluster: ChaosCluster, scenario: Scenario, options: RunOptions, ledger: Ledger | None = None
) -> ScenarioResult:
    """One scenario; whatever it changed on the machine is undone however it ends.

    A scenario's own cleanup runs even when stopping a replica raises, and
    anything still in the ledger after it (the cleanup failed, or never got
    its objects) is undone from the ledger before this returns or raises.
    """
    started = time.monotonic()
    own_ledger = ledger is None
    ledger = ledger or Ledger(ledger_dir())
    mark = len(ledger.entries)
    run = ChaosRun(cluster, scenario.name, options, ledger)
    run_sync(
        ensure_topics(connect(cluster.settings), [s.with_name(run.prefix + s.name) for s in TOPICS])
    )
    try:
        if scenario.prepare is not None:
            scenario.prepare(run)
        run.start_all()
        run.load.start()
        run.wait(options.warmup_s)
        scenario.inject(run)
        run.wait(options.settle_s)
        figures = run.load.stop()
        for replica_id in list(run.held):
            run.start_replica(replica_id)  # a scenario that left one stopped: bring it back
        run.wait_until(run.drained, options.drain_timeout_s, "the group committing the input's end")
    except BaseException:
        run.load.stop()
        raise
    finally:
        try:
            run.stop_all()
        finally:
            try:
                if scenario.cleanup is not None:
                    scenario.cleanup(run)
            finally:
                if own_ledger:
                    ledger.close()
                else:
                    ledger.undo_since(mark)
    inputs, outputs, dead = run_sync(
        read_run(
            cluster.settings,
            run.input.name,
            run.output.name,
            run.input.dlq_name,
            committed_only=options.exactly_once,
        )
    )
    verdict = judge(
        inputs,
        outputs,
        dead,
        run.faults_at,
        (figures.started_at, figures.stopped_at),
        run.baseline_until,
    )
    if scenario.assess is not None:
        run.extra.update(scenario.assess(run, outputs))
    return ScenarioResult(
        name=scenario.name,
        verdict=verdict,
        load=figures,
        faults_at=run.faults_at,
        replica_exits=run.replica_exits,
        commit_regressions=run.commit_regressions,
        seconds=time.monotonic() - started,
        extra=run.extra,
    )
