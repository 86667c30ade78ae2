"""A local supervisor: the scaling policy applied to real `pipeline worker` processes.

Every interval it samples the group's lag from the brokers, asks the
autoscaler for a size and starts or stops workers to match. Scale-down
sends SIGTERM to the newest worker, which drains, commits and leaves the
group before it exits; the supervisor does not count it as running from
then on. A worker that exits on its own is replaced.
"""

from __future__ import annotations

import asyncio
import json
import logging
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
from pipeline.scaling.lag import GroupLag, LagMonitor, export_lag
from pipeline.scaling.policy import (
    Autoscaler,
    Decision,
    Observation,
    ScalingPolicy,
    is_replay_group,
)
from pipeline.scaling.worker_process import WorkerProcess
from pipeline.settings import PipelineSettings

log = logging.getLogger("pipeline.supervisor")


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

    def line(self) -> str:
        capacity = (
            f"{self.per_replica_rate:,.0f}/s per replica"
            if self.per_replica_rate
            else "capacity not measured yet"
        )
        draining = f" (+{self.draining} draining)" if self.draining else ""
        return (
            f"lag {self.lag:,} · in {self.input_rate:,.0f}/s · out {self.consume_rate:,.0f}/s · "
            f"replicas {self.replicas}{draining} → {self.desired} · {capacity} · {self.reason}"
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
    decide: Callable[[Observation], Decision] | None = None
    """Another policy to apply (benchmarks compare KEDA's); default: our Autoscaler."""
    ready: bool = False
    became_ready: asyncio.Event = field(default_factory=asyncio.Event)
    latest: Status | None = None

    def __post_init__(self) -> None:
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

    def _next_replica_id(self) -> str:
        taken = set(self.workers) | {worker.replica_id for worker in self.draining}
        index = 0
        while f"{self.processor}-{index}" in taken:
            index += 1
        return f"{self.processor}-{index}"

    def _start_one(self) -> None:
        replica_id = self._next_replica_id()
        worker = WorkerProcess(
            self.processor,
            replica_id,
            self.env,
            self.log_dir / f"{replica_id}.log",
            *self.worker_args,
        )
        self.workers[replica_id] = worker
        log.info("started %s (pid %d)", replica_id, worker.process.pid)

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
        while len(self.workers) < desired:
            self._start_one()
        while len(self.workers) > desired:
            self._stop_one()

    # -- the loop -------------------------------------------------------------------

    def observe(self, sample: GroupLag, replicas: int) -> Observation:
        return Observation(
            at=time.monotonic(),
            lag=sample.lag,
            partitions=len(sample.partitions),
            partitions_with_lag=sample.partitions_with_lag,
            input_rate=sample.produce_rate or 0.0,
            consume_rate=sample.consume_rate or 0.0,
            replicas=replicas,
        )

    def _record(self, sample: GroupLag, decision: Decision, replicas: int) -> Status:
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
        clients = connect(self.settings)
        async with LagMonitor(clients, self.group, self.topic, measure_age=False) as monitor:
            export_lag(self.metrics, monitor)
            await monitor.sample()  # the first sample has no rates
            self.ready = True
            self.became_ready.set()
            try:
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
                    assert self.decide is not None
                    decision = self.decide(self.observe(sample, replicas))
                    if self.manage_processes:
                        self._resize(decision.desired)
                    self._record(sample, decision, replicas)
            finally:
                await self.shutdown()

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
