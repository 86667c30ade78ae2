"""A local supervisor: the scaling policy applied to real `pipeline worker` processes.

Every interval it samples the group's lag from the brokers, asks the
autoscaler for a size and starts or stops workers to match. Scale-down
sends SIGTERM to the newest worker, which drains, commits and leaves the
group before it exits; the supervisor does not count it as running from
then on. A worker that exits on its own is replaced, and so is one whose
/healthz stops answering (pipeline.scaling.health_probe kills it).

The workers of one scale-up join the group through one gate
(pipeline.runtime.join_gate): one rebalance per step. Until the step has
settled (gate open, every leaving worker gone, every worker a member, the
group Stable) the autoscaler is told so, and neither learns capacity from
the stall nor reads its lag as new demand.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.kafka.connect import connect
from pipeline.kafka.port import KafkaClientError
from pipeline.metrics import Metrics, labels_of
from pipeline.runtime.join_gate import JoinGate
from pipeline.scaling.autoscaler import Autoscaler
from pipeline.scaling.health_probe import HealthProbe
from pipeline.scaling.lag import GroupLag, LagMonitor, export_lag
from pipeline.scaling.policy import Decision, Observation, ScalingPolicy, is_replay_group
from pipeline.scaling.worker_process import WorkerProcess
from pipeline.settings import PipelineSettings

log = logging.getLogger("pipeline.supervisor")

GATE_POLL_S = 0.05
"""How often the step's gates are looked at: a step's replicas join within this of the last."""
SETTLED_STATES = ("Stable", "Empty")
SETTLE_LIMIT_S = 60.0
UNCAPPED = 1_000_000
"""The partition count a share group's scaling sees: none, in effect (max_replicas caps it)."""
"""A step that has not settled by then (a worker that never joins) is taken as settled:
the policy must not stay blind to the rates for good."""


@dataclass
class Status:
    """One interval's account, for the live line, the status file and /metrics."""

    at: float
    lag: int
    input_rate: float
    consume_rate: float
    replicas: int
    draining: int
    desired: int
    reason: str
    per_replica_rate: float | None
    replaced: int
    settling: bool = False

    def line(self) -> str:
        capacity = (
            f"{self.per_replica_rate:,.0f}/s per replica"
            if self.per_replica_rate
            else "capacity not measured yet"
        )
        draining = f" (+{self.draining} draining)" if self.draining else ""
        settling = " · settling" if self.settling else ""
        return (
            f"lag {self.lag:,} · in {self.input_rate:,.0f}/s · out {self.consume_rate:,.0f}/s · "
            f"replicas {self.replicas}{draining} → {self.desired}{settling} · {capacity} · "
            f"{self.reason}"
        )


@dataclass
class Supervisor:
    settings: PipelineSettings
    processor: str
    group: str
    topic: str
    policy: ScalingPolicy
    env: dict[str, str]
    log_dir: Path
    interval_s: float = 5.0
    worker_args: tuple[str, ...] = ()
    status_file: Path | None = None
    on_status: Callable[[Status], None] = lambda _status: None
    metrics: Metrics = field(default_factory=Metrics)
    workers: dict[str, WorkerProcess] = field(default_factory=dict)
    draining: list[WorkerProcess] = field(default_factory=list)
    replaced: int = 0
    manage_processes: bool = True
    """False: start nothing, only export the desired replicas (Kubernetes does the rest)."""
    probe_health: bool = True
    """Kill (then replace) a worker whose /healthz stops answering (scaling.health_probe)."""
    decide: Callable[[Observation], Decision] | None = None
    """Another policy to apply (benchmarks compare KEDA's); default: our Autoscaler."""
    share: bool | None = None
    """The group is a queue-mode processor's share group (None: told by its state)."""
    ready: bool = False
    became_ready: asyncio.Event = field(default_factory=asyncio.Event)
    latest: Status | None = None
    gates: list[JoinGate] = field(default_factory=list)
    """Scale steps whose gate is not open yet."""
    steps: int = 0
    stepped_at: float = -math.inf
    """When replicas were last started or stopped (monotonic)."""

    def __post_init__(self) -> None:
        self.probe = HealthProbe(lambda: self.workers)
        """Workers whose /healthz stops answering are killed, then replaced (a frozen loop)."""
        if is_replay_group(self.group):
            raise ConfigError(
                f"group {self.group!r} is a replay group; the supervisor scales live groups only"
            )
        self.autoscaler = Autoscaler(self.policy, self.policy.min_replicas)
        if self.decide is None:
            self.decide = self.autoscaler.decide
        self.metrics.gauge(
            "supervisor_replicas",
            lambda: {
                labels_of(group=self.group, state="running"): float(len(self.workers)),
                labels_of(group=self.group, state="draining"): float(len(self.draining)),
            },
        )
        self.metrics.gauge(
            "target_drain_seconds",
            lambda: {labels_of(group=self.group): self.policy.target_drain_s},
        )
        self.metrics.gauge(
            "desired_replicas",
            lambda: {
                (("group", self.group),): float(
                    self.latest.desired if self.latest else self.policy.min_replicas
                )
            },
        )

    def live(self) -> tuple[bool, str]:
        return True, "ok"

    # -- processes ----------------------------------------------------------------

    def _next_replica_id(self, also_taken: set[str]) -> str:
        taken = set(self.workers) | {worker.replica_id for worker in self.draining} | also_taken
        index = 0
        while f"{self.processor}-{index}" in taken:
            index += 1
        return f"{self.processor}-{index}"

    def _start_step(self, count: int) -> None:
        """`count` workers that wait at one gate, so that they join in one rebalance."""
        self.steps += 1
        replica_ids: list[str] = []
        for _ in range(count):
            replica_ids.append(self._next_replica_id(set(replica_ids)))
        if self.gates:
            # The last step's workers are not in yet: these join with them, one rebalance.
            gate = self.gates[-1]
            gate.admit(replica_ids)
        else:
            gate = JoinGate(self.log_dir / ".gates" / f"step-{self.steps}", replica_ids)
            self.gates.append(gate)
        for replica_id in replica_ids:
            worker = WorkerProcess(
                self.processor,
                replica_id,
                self.env,
                self.log_dir / f"{replica_id}.log",
                "--join-gate",
                str(gate.path),
                *self.worker_args,
            )
            self.workers[replica_id] = worker
            log.info("started %s (pid %d)", replica_id, worker.process.pid)

    async def _open_gates(self, stop: asyncio.Event) -> None:
        """Open each step's gate once all its workers are at it (or gone); polled often."""
        while not stop.is_set():
            for gate in list(self.gates):
                alive = {rid for rid, worker in self.workers.items() if worker.running}
                if gate.should_open(gone=set(gate.replica_ids) - alive):
                    gate.open()
                    self.gates.remove(gate)
                    log.info(
                        "step %s: %d of %d at the gate after %.1fs; joining together",
                        gate.path.name,
                        len(gate.arrived()),
                        len(gate.replica_ids),
                        gate.age_s(),
                    )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), GATE_POLL_S)

    async def _settling(self, monitor: LagMonitor) -> bool:
        """A step under way: a gate shut, a worker still leaving, a worker not in the group
        yet, or a rebalance. Never longer than SETTLE_LIMIT_S after the last step of its own;
        with --recommend-only, whenever the group rebalances."""
        if self.manage_processes and time.monotonic() - self.stepped_at > SETTLE_LIMIT_S:
            return False
        if self.gates or self.draining:
            return True
        if self.share:
            return False  # a share group has no rebalance: a new member takes records at once
        try:
            group = await monitor.describe_group()
        except KafkaClientError as exc:
            log.warning("could not read the group's state (%s); taking it as settled", exc)
            return False
        everyone_in = not self.manage_processes or len(group.members) == len(self.workers)
        return group.state not in SETTLED_STATES or not everyone_in

    def _stop_one(self) -> None:
        newest = max(self.workers, key=lambda rid: int(rid.rsplit("-", 1)[1]))
        worker = self.workers.pop(newest)
        worker.signal(signal.SIGTERM)
        self.draining.append(worker)
        log.info("stopping %s: SIGTERM, it drains, commits and leaves the group", newest)

    def _reap(self) -> None:
        for worker in list(self.draining):
            if not worker.running:
                code = worker.wait()
                self.draining.remove(worker)
                log.info("%s exited (%d) after draining", worker.replica_id, code)
        for replica_id, worker in list(self.workers.items()):
            if not worker.running:
                code = worker.wait()
                del self.workers[replica_id]
                self.replaced += 1
                log.warning(
                    "%s died (exit %d); replacing it. Its log: %s\n%s",
                    replica_id,
                    code,
                    worker.log_path,
                    worker.tail(10),
                )

    def _resize(self, desired: int) -> None:
        if len(self.workers) != desired:
            self.stepped_at = time.monotonic()
        if len(self.workers) < desired:
            self._start_step(desired - len(self.workers))
        while len(self.workers) > desired:
            self._stop_one()

    # -- the loop -------------------------------------------------------------------

    def observe(self, sample: GroupLag, replicas: int, settling: bool = False) -> Observation:
        partitions, with_lag = len(sample.partitions), sample.partitions_with_lag
        if sample.kind == "share":
            # A share group hands records to any number of members: only max_replicas caps it.
            partitions = with_lag = UNCAPPED
        return Observation(
            at=time.monotonic(),
            lag=sample.lag,
            partitions=partitions,
            partitions_with_lag=with_lag,
            input_rate=sample.produce_rate or 0.0,
            consume_rate=sample.consume_rate or 0.0,
            replicas=replicas,
            settling=settling,
        )

    def _record(
        self, sample: GroupLag, decision: Decision, replicas: int, settling: bool
    ) -> Status:
        status = Status(
            at=time.time(),
            lag=sample.lag,
            input_rate=sample.produce_rate or 0.0,
            consume_rate=sample.consume_rate or 0.0,
            replicas=replicas,
            draining=len(self.draining),
            desired=decision.desired,
            reason=decision.reason,
            per_replica_rate=decision.per_replica_rate,
            replaced=self.replaced,
            settling=settling,
        )
        self.latest = status
        if self.status_file is not None:
            with open(self.status_file, "a") as out:
                out.write(json.dumps({"group": self.group, **status.__dict__}) + "\n")
        self.on_status(status)
        return status

    async def run(self, stop: asyncio.Event) -> None:
        if self.manage_processes:
            self._resize(self.policy.min_replicas)
        gates = asyncio.ensure_future(self._open_gates(stop))
        probing = (
            asyncio.ensure_future(self.probe.run(stop))
            if self.manage_processes and self.probe_health
            else None
        )
        clients = connect(self.settings)
        try:
            async with LagMonitor(
                clients, self.group, self.topic, measure_age=False, share=self.share
            ) as monitor:
                export_lag(self.metrics, monitor)
                await monitor.sample()  # the first sample has no rates
                self.ready = True
                self.became_ready.set()
                await self._loop(stop, monitor)
        finally:
            gates.cancel()
            if probing is not None:
                probing.cancel()
            await self.shutdown()

    async def _loop(self, stop: asyncio.Event, monitor: LagMonitor) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.interval_s)
                break
            except TimeoutError:
                pass
            try:
                sample = await monitor.sample()
            except KafkaClientError as exc:
                log.warning("could not read the group's lag (%s); deciding next time", exc)
                continue
            if self.manage_processes:
                self._reap()
                replicas = len(self.workers)
            else:
                replicas = await monitor.members()
            settling = await self._settling(monitor)
            assert self.decide is not None
            decision = self.decide(self.observe(sample, replicas, settling))
            if self.manage_processes:
                self._resize(decision.desired)
            self._record(sample, decision, replicas, settling)

    async def shutdown(self, grace_s: float = 60) -> None:
        for worker in self.workers.values():
            worker.signal(signal.SIGTERM)
        self.draining.extend(self.workers.values())
        self.workers.clear()

        async def exit_of(worker: WorkerProcess) -> None:
            try:
                await asyncio.to_thread(worker.process.wait, grace_s)
            except subprocess.TimeoutExpired:
                log.warning("%s did not exit within %.0fs: SIGKILL", worker.replica_id, grace_s)
                worker.signal(signal.SIGKILL)
            worker.wait(10)

        await asyncio.gather(*(exit_of(worker) for worker in self.draining))
        self.draining.clear()
        self.gates.clear()
        shutil.rmtree(self.log_dir / ".gates", ignore_errors=True)
