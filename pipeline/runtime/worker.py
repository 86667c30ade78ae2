"""The worker process a consumer group's replicas run.

Fetch loop → one PartitionWorker (bulkhead) per assigned partition
(pipeline.runtime.partitions) → outputs and dead letters through the
shared producer → commits of each partition's low-water mark of finished
offsets (pipeline.runtime.commits). Leaves out of the fetch a partition
whose bulkhead is full or holds its share of the in-flight bound, and
fetches nothing while the process is at that bound
(pipeline.runtime.fetch_plan). Rebalances and SIGTERM drain the work in
hand, commit it and let go. A replay is the same run on a consumer held to
its ranges (pipeline.runtime.replay_consumer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.kafka.port import Clients, Consumer, ConsumerOptions
from pipeline.metrics import Metrics, labels_of
from pipeline.ops.replay import ReplayPlan
from pipeline.processor import Processor
from pipeline.publishing.producer import EventProducer
from pipeline.resilience.breaker import BreakerRegistry
from pipeline.resilience.log_limit import RateLimitedLog
from pipeline.runtime import defaults
from pipeline.runtime.commits import Committer
from pipeline.runtime.fetch_plan import fetch_plan
from pipeline.runtime.gauges import register_worker_gauges
from pipeline.runtime.join_gate import wait_at
from pipeline.runtime.membership import MembershipGuard
from pipeline.runtime.output_topics import message_limits, prepare_schemas
from pipeline.runtime.partitions import Partitions
from pipeline.runtime.record_path import RecordPath
from pipeline.runtime.replay_consumer import ReplayConsumer
from pipeline.runtime.services import Services, default_cache_root, open_services
from pipeline.runtime.transactions import TransactionalPublisher
from pipeline.settings import PipelineSettings

log = logging.getLogger("pipeline.worker")

EXIT_OK = 0
EXIT_DRAIN_INCOMPLETE = 3
EXIT_FAILED = 4
HEARTBEAT_INTERVAL_MS = 1000
LEAVE_GROUP_DEADLINE_S = 15.0  # leaving can wait on a rebalance others hold up; work is committed
GAP_CHECK_INTERVAL_S = 1.0
COMMITTER_STOP_S = 5.0


@dataclass(frozen=True)
class WorkerOptions:
    replica_id: str
    static_membership: bool = False
    commit_interval_s: float = 1.0
    drain_deadline_s: float = defaults.DRAIN_DEADLINE_S
    """SIGTERM and revocation: how long work in hand may take to finish."""
    max_in_flight_records: int = defaults.MAX_IN_FLIGHT_RECORDS
    """Records held in memory (queued, being handled or awaiting acks), all partitions.

    Above it nothing is fetched. With fetch_partition_bytes (one buffered fetch
    per partition at most), what bounds a worker's memory whatever the backlog.
    """
    fetch_partition_bytes: int = defaults.FETCH_PARTITION_BYTES
    """Also sizes a whole fetch response: FETCH_RESPONSE_PARTITIONS times this."""
    liveness_stall_s: float = defaults.LIVENESS_STALL_S
    session_timeout_ms: int = 10_000
    health_port: int | None = None
    health_host: str = "127.0.0.1"
    """0.0.0.0 in a container, where probes come from outside."""
    handle_signals: bool = True
    """SIGTERM and SIGINT drain and stop; off where the caller owns them (tests, harnesses)."""
    cache_dir: Path | None = None
    """Where the tables' caches live; None: `caches` in the state folder (pipeline.paths)."""
    join_gate: Path | None = None
    """Join the group only when this file exists (pipeline.runtime.join_gate)."""


class Runtime:
    """One replica: the process's services, its consumer and producer, its partitions.

    It is the `PartitionHost` its partition workers see (pipeline.runtime.host).
    """

    def __init__(
        self,
        settings: PipelineSettings,
        processor: Processor[Any],
        options: WorkerOptions,
        clients: Clients,
        replay: ReplayPlan | None = None,
    ) -> None:
        """`clients` are the port's (pipeline.kafka.connect makes them from settings)."""
        self.settings = settings
        self.clients = clients
        self.processor = processor
        self.options = options
        self.replica_id = options.replica_id
        self.group_id = replay.group if replay else processor.group_id
        self.metrics = Metrics()
        self.breakers = BreakerRegistry(processor.dependencies)
        self.record_path = RecordPath(processor, self.group_id, settings.envelope, {})
        """Replaced at start by one that knows the topics' size limits on the cluster."""
        self.dead_letter_log = RateLimitedLog(log, "dead-lettered records")
        self.retry_log = RateLimitedLog(log, "retry lines")
        self.services = Services(processor.name)
        self.transactions: TransactionalPublisher | None = None
        if processor.exactly_once:
            self.producer = EventProducer(
                settings,
                transactional_id=f"{self.group_id}-{self.replica_id}",
                clients=self.clients,
            )
            self.transactions = TransactionalPublisher(
                self.producer, self._group_metadata, lambda: self.membership.publishable()
            )
        else:
            self.producer = EventProducer(settings, clients=self.clients)
        self.room_freed = asyncio.Event()
        """Set when a partition finishes a batch: the in-flight bound may have room again."""
        self._stop_requested = asyncio.Event()
        self.failure: str | None = None
        self._executors: dict[str, Executor] = {}
        self.drain_clean = True
        self.signalled = False
        self.consumer: Consumer = self.clients.consumer(self._consumer_options())
        self.replay: ReplayConsumer | None = None
        """A bounded run over [start, end) per partition in its own group (pipeline.ops.replay)."""
        if replay is not None:
            self.consumer = self.replay = ReplayConsumer(self.consumer, replay, self.metrics)
        marks = processor.quarantine_after is not None  # commits carry the in-flight mark
        self.committer = Committer(self.consumer, options.commit_interval_s, self.metrics, marks)
        self.membership = MembershipGuard(
            self.committer.confirm_membership,
            # A stall this long may have outlasted the session: heartbeats are this far apart.
            (options.session_timeout_ms - self._heartbeat_interval_ms()) / 1000,
            self.metrics,
        )
        self.partitions = Partitions(
            self,
            self.consumer,
            self.committer,
            self.metrics,
            options.drain_deadline_s,
            self._stop_requested,
            # A replay's range is checked against retention when it is planned.
            offset_reset=None if replay else settings.offset_reset,
        )
        who = labels_of(processor=processor.name, replica=self.replica_id, group=self.group_id)
        register_worker_gauges(self.metrics, self.partitions, self.consumer, self.breakers, who)

    async def _group_metadata(self) -> object:
        return await self.consumer.group_metadata()

    def _heartbeat_interval_ms(self) -> int:
        return min(HEARTBEAT_INTERVAL_MS, self.options.session_timeout_ms // 3)

    def _consumer_options(self) -> ConsumerOptions:
        options = self.options
        return ConsumerOptions(
            group_id=self.group_id,
            group_instance_id=f"{self.group_id}-{self.replica_id}"
            if options.static_membership
            else None,
            isolation="read_committed",
            start="earliest",
            max_partition_fetch_bytes=options.fetch_partition_bytes,
            fetch_max_bytes=defaults.FETCH_RESPONSE_PARTITIONS * options.fetch_partition_bytes,
            session_timeout_ms=options.session_timeout_ms,
            # A member learns of a rebalance at its next heartbeat and every member waits for
            # the slowest: a scale step costs up to one interval more (at most session / 3).
            heartbeat_interval_ms=self._heartbeat_interval_ms(),
            rebalance_timeout_ms=int(options.drain_deadline_s * 1000) + 10_000,
        )

    # -- what partition workers, health checks and signals use ------------------------------

    @property
    def ready(self) -> bool:
        return self.partitions.ready

    def fail(self, reason: str) -> None:
        self.failure = reason
        self._stop_requested.set()

    def _on_signal(self) -> None:
        self.signalled = True
        self.request_stop()

    def request_stop(self) -> None:
        log.info("stop requested: draining, committing, leaving the group")
        self._stop_requested.set()

    def executor_for(self, kind: str) -> Executor:
        executor = self._executors.get(kind)
        if executor is None:
            workers = max(1, (os.cpu_count() or 2) - 1)
            executor = (
                ProcessPoolExecutor(workers) if kind == "process" else ThreadPoolExecutor(workers)
            )
            self._executors[kind] = executor
        return executor

    def live(self) -> tuple[bool, str]:
        """Not live when a partition with lag has not advanced for `liveness_stall_s`."""
        stalled = self.partitions.stalled(self.options.liveness_stall_s)
        return (False, stalled) if stalled else (True, "ok")

    # -- the main loop ----------------------------------------------------------------

    async def run(self) -> int:
        if self.options.handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._on_signal)
        health = None
        if self.options.health_port is not None:
            from pipeline.runtime.health import HealthServer

            health = HealthServer(self, self.options.health_port, self.options.health_host)
            await health.start()
        try:
            if not await self._open_services():
                return EXIT_OK
            await self._read_limits()
            await self.producer.start()
            if self.transactions is not None:
                self.transactions.start()
            await self.consumer.start()
            if self.options.join_gate is not None:
                await wait_at(self.options.join_gate, self.replica_id, self._stop_requested)
            self.consumer.subscribe(self.processor.source.name, self.partitions)
            await self._consume()
        finally:
            if health is not None:
                await health.stop()
        if self.failure:
            log.error("worker failed: %s", self.failure)
            return EXIT_FAILED
        return EXIT_OK if self.drain_clean else EXIT_DRAIN_INCOMPLETE

    async def _open_services(self) -> bool:
        """The pool and tables, before joining the group; False when stopped meanwhile."""
        processor = self.processor
        opening = asyncio.ensure_future(
            open_services(
                self.settings,
                self.clients,
                processor.name,
                self.group_id,
                self.replica_id,
                processor.tables,
                processor.database,
                self.metrics,
                self.breakers,
                self.fail,
                self.options.cache_dir or default_cache_root(),
            )
        )
        # Tables can take a while to catch up: a SIGTERM meanwhile just exits.
        stop_waiter = asyncio.ensure_future(self._stop_requested.wait())
        await asyncio.wait([opening, stop_waiter], return_when=asyncio.FIRST_COMPLETED)
        stop_waiter.cancel()
        if not opening.done():
            opening.cancel()
            await asyncio.gather(opening, return_exceptions=True)
            log.info("stopped before the pool and tables were ready")
            return False
        try:
            self.services = opening.result()
        except BaseException:
            await self.consumer.stop()  # never started; closing keeps the log free of warnings
            raise
        return True

    async def _consume(self) -> None:
        committer = asyncio.ensure_future(self.committer.run())
        committer.add_done_callback(self._on_committer_done)
        watch = asyncio.ensure_future(self.membership.run())
        log.info(
            "worker %s of group %s consuming %s",
            self.replica_id,
            self.group_id,
            self.processor.source.name,
        )
        try:
            await self._fetch_loop()
        finally:
            watch.cancel()
            self.committer.stop()
            await asyncio.wait([committer], timeout=COMMITTER_STOP_S)
            if not committer.done():
                committer.cancel()  # a commit stuck in a rebalance; the drain commits anyway
            await self._shutdown()

    def _on_committer_done(self, committer: asyncio.Future[None]) -> None:
        if committer.cancelled() or committer.exception() is None:
            return
        error = committer.exception()
        log.error("the commit loop failed: %s: %s", type(error).__name__, error, exc_info=error)
        self.fail(f"the commit loop failed ({type(error).__name__})")

    async def _read_limits(self) -> None:
        """What the outputs take (pipeline.runtime.output_topics), before joining the group."""
        limits = await message_limits(self.clients, self.processor)
        await prepare_schemas(self.processor, self._stop_requested)
        self.record_path = RecordPath(self.processor, self.group_id, self.settings.envelope, limits)

    async def _fetch_loop(self) -> None:
        consumer, partitions = self.consumer, self.partitions
        stop = self._stop_requested
        next_gap_check = 0.0
        while not stop.is_set():
            assigned = consumer.assignment()
            fetchable, max_records = fetch_plan(
                assigned,
                partitions.held(),
                partitions.paused,
                self.options.max_in_flight_records,
                self.processor.batch_records,
            )
            if fetchable or not assigned:
                # Held-back partitions are left out of the call (pipeline.runtime.fetch_plan).
                batches = await consumer.fetch(fetchable, 0.1, max(1, max_records))
            else:
                batches = {}
                self.room_freed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.room_freed.wait(), 0.1)
            for tp, records in batches.items():
                if records:
                    partitions.offer(tp, records)
            if time.monotonic() >= next_gap_check:
                next_gap_check = time.monotonic() + GAP_CHECK_INTERVAL_S
                self.committer.skip_gaps(partitions.idle())
                self.dead_letter_log.tick()
                self.retry_log.tick()
            partitions.reconcile_pauses()
            partitions.update_readiness()
            if self.replay is not None and self.replay.finished():
                log.info("replay %s reached the end of its range", self.replay.plan.name)
                self.request_stop()

    async def _shutdown(self) -> None:
        self.drain_clean = await self.partitions.drain_all()
        started = time.monotonic()
        # Not wait_for: it waits for the cancelled call to finish, and aiokafka's
        # close can go on rejoining a group that rebalances meanwhile.
        leaving = asyncio.ensure_future(self.consumer.stop())
        try:
            await asyncio.wait([leaving], timeout=LEAVE_GROUP_DEADLINE_S)
            if not leaving.done():
                leaving.cancel()
                log.warning(
                    "leaving group %s took over %.0fs (a rebalance in progress?); exiting "
                    "anyway: the broker drops this member after its session timeout",
                    self.group_id,
                    LEAVE_GROUP_DEADLINE_S,
                )
            elif leaving.exception() is not None:
                log.warning("leaving group %s failed: %s", self.group_id, leaving.exception())
        finally:
            log.info("left group %s in %.1fs", self.group_id, time.monotonic() - started)
            self.dead_letter_log.flush()
            self.retry_log.flush()
            if self.transactions is not None:
                await self.transactions.stop()
            await self.producer.stop()
            for executor in self._executors.values():
                executor.shutdown(wait=False, cancel_futures=True)
            await self.services.close()
