"""The worker process a consumer group's replicas run.

Fetch loop → one PartitionWorker (bulkhead) per assigned partition →
outputs and dead letters through the shared producer → commits of each
partition's low-water mark of finished offsets. Leaves out of the fetch a
partition whose bulkhead is full or holds its share of the in-flight bound,
and fetches nothing while the process is at that bound (pipeline.fetch_plan).
Rebalances and SIGTERM drain the work in hand, commit it and let go.
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

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from pipeline import worker_defaults as defaults
from pipeline.breaker import BreakerRegistry, BreakerState
from pipeline.fetch_plan import fetch_plan
from pipeline.log_limit import RateLimitedLog
from pipeline.metrics import Labels, Metrics, labels_of
from pipeline.partition_worker import PartitionWorker
from pipeline.processor import Processor
from pipeline.producer import EventProducer
from pipeline.record_path import RecordPath
from pipeline.record_size import BROKER_DEFAULT_MAX_MESSAGE_BYTES
from pipeline.replay import ReplayPlan
from pipeline.replay_gate import ReplayGate
from pipeline.services import Services, open_services
from pipeline.settings import PipelineSettings
from pipeline.topic_admin import max_message_bytes
from pipeline.transactions import TransactionalPublisher

log = logging.getLogger("pipeline.worker")

EXIT_OK = 0
EXIT_DRAIN_INCOMPLETE = 3
EXIT_FAILED = 4
HEARTBEAT_INTERVAL_MS = 1000
LEAVE_GROUP_DEADLINE_S = 15.0
"""Leaving can wait on a rebalance other members hold up; finished work is committed by then."""
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


class Runtime:
    def __init__(
        self,
        settings: PipelineSettings,
        processor: Processor,
        options: WorkerOptions,
        replay: ReplayPlan | None = None,
    ) -> None:
        self.settings = settings
        self.processor = processor
        self.options = options
        self.replica_id = options.replica_id
        self.group_id = replay.group if replay else processor.group_id
        self.metrics = Metrics()
        self.paused: set[TopicPartition] = set()
        self.replay = ReplayGate(replay, self.paused, self.metrics) if replay else None
        """A bounded run over [start, end) per partition in its own group (pipeline.replay)."""
        self.breakers = BreakerRegistry(processor.dependencies)
        self.record_path = RecordPath(processor, self.group_id, settings.envelope, {})
        """Replaced at start by one that knows the topics' size limits on the cluster."""
        self.dead_letter_log = RateLimitedLog(log, "dead-lettered records")
        self.retry_log = RateLimitedLog(log, "retry lines")
        self._next_gap_check = 0.0
        self.services = Services(processor.name)
        self.transactions: TransactionalPublisher | None = None
        if processor.exactly_once:
            self.producer = EventProducer(
                settings, transactional_id=f"{self.group_id}-{self.replica_id}"
            )
            self.transactions = TransactionalPublisher(self.producer, self.group_id)
        else:
            self.producer = EventProducer(settings)
        self.workers: dict[TopicPartition, PartitionWorker] = {}
        self.committed_signal = asyncio.Event()
        self.peak_held = 0
        """Most records held in memory at once (the in-flight bound's effect, exported)."""
        self.room_freed = asyncio.Event()
        """Set when a partition finishes a batch: the in-flight bound may have room again."""
        self._commit_requested = asyncio.Event()
        self._fetching_done = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._failure: str | None = None
        self._executors: dict[str, Executor] = {}
        self._start_end_offsets: dict[TopicPartition, int] = {}
        self.ready = False
        self._assignment_settled = False
        self._nothing_to_catch_up: set[TopicPartition] = set()
        self._revoking: set[TopicPartition] = set()
        self.drain_clean = True
        self.signalled = False
        self.consumer = AIOKafkaConsumer(
            **settings.client_kwargs(),
            group_id=self.group_id,
            group_instance_id=f"{self.group_id}-{self.replica_id}"
            if options.static_membership
            else None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=options.fetch_partition_bytes,
            fetch_max_bytes=defaults.FETCH_RESPONSE_PARTITIONS * options.fetch_partition_bytes,
            session_timeout_ms=options.session_timeout_ms,
            # A member learns that a rebalance has begun from its next heartbeat;
            # every member stops until the slowest has rejoined, so a scale step
            # costs up to one interval more. Kafka asks for at most a third of
            # the session timeout.
            heartbeat_interval_ms=min(HEARTBEAT_INTERVAL_MS, options.session_timeout_ms // 3),
            rebalance_timeout_ms=int(options.drain_deadline_s * 1000) + 10_000,
            isolation_level="read_committed",
        )
        self._register_gauges()

    # -- services the partition workers use ----------------------------------------

    def request_commit(self) -> None:
        self._commit_requested.set()

    def fail(self, reason: str) -> None:
        self._failure = reason
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

    # -- the main loop ----------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal)
        health = None
        if self.options.health_port is not None:
            from pipeline.health import HealthServer

            health = HealthServer(self, self.options.health_port, self.options.health_host)
            await health.start()
        processor = self.processor
        opening = asyncio.ensure_future(
            open_services(
                self.settings,
                processor.name,
                self.group_id,
                self.replica_id,
                processor.tables,
                processor.database,
                self.metrics,
                self.breakers,
                self.fail,
            )
        )
        # Tables can take a while to catch up: a SIGTERM meanwhile just exits.
        stop_waiter = asyncio.ensure_future(self._stop_requested.wait())
        await asyncio.wait([opening, stop_waiter], return_when=asyncio.FIRST_COMPLETED)
        stop_waiter.cancel()
        if not opening.done():
            opening.cancel()
            await asyncio.gather(opening, return_exceptions=True)
            if health is not None:
                await health.stop()
            log.info("stopped before the pool and tables were ready")
            return EXIT_OK
        try:
            self.services = opening.result()
        except BaseException:
            await self.consumer.stop()  # never started; closing keeps the log free of warnings
            if health is not None:
                await health.stop()
            raise
        await self._read_limits()
        await self.producer.start()
        if self.transactions is not None:
            self.transactions.start()
        await self.consumer.start()
        self.consumer.subscribe([self.processor.source.name], listener=_Rebalance(self))
        committer = asyncio.ensure_future(self._commit_loop())
        committer.add_done_callback(self._on_committer_done)
        log.info(
            "worker %s of group %s consuming %s",
            self.replica_id,
            self.group_id,
            self.processor.source.name,
        )
        try:
            await self._fetch_loop()
        finally:
            self._fetching_done.set()
            self._commit_requested.set()  # wake it to see the flag
            await asyncio.wait([committer], timeout=COMMITTER_STOP_S)
            if not committer.done():
                committer.cancel()  # a commit stuck in a rebalance; the drain commits anyway
            await self._shutdown()
            if health is not None:
                await health.stop()
        if self._failure:
            log.error("worker failed: %s", self._failure)
            return EXIT_FAILED
        return EXIT_OK if self.drain_clean else EXIT_DRAIN_INCOMPLETE

    async def _read_limits(self) -> None:
        """The DLQ's and outputs' max.message.bytes, so nothing is sent that the broker refuses."""
        processor = self.processor
        topics = [processor.source.dlq_name, *(spec.name for spec in processor.outputs)]
        try:
            limits = await max_message_bytes(self.settings, topics)
        except Exception as exc:  # noqa: BLE001 - an admin refusal must not stop the worker
            log.warning(
                "could not read max.message.bytes of %s (%s: %s); assuming the broker "
                "default of %d bytes",
                ", ".join(topics),
                type(exc).__name__,
                exc,
                BROKER_DEFAULT_MAX_MESSAGE_BYTES,
            )
            limits = {}
        missing = [topic for topic in topics if topic not in limits]
        if missing:
            log.warning(
                "topic(s) %s not found on the cluster; run `pipeline topics apply` "
                "(records for them wait until they exist)",
                ", ".join(missing),
            )
        self.record_path = RecordPath(processor, self.group_id, self.settings.envelope, limits)

    async def _fetch_loop(self) -> None:
        consumer = self.consumer
        stop = self._stop_requested
        while not stop.is_set():
            assigned = consumer.assignment()
            held = {tp: worker.held for tp, worker in self.workers.items()}
            self.peak_held = max(self.peak_held, sum(held.values()))
            fetchable, max_records = fetch_plan(
                assigned,
                held,
                self.paused,
                self.options.max_in_flight_records,
                self.processor.batch_records,
            )
            if fetchable or not assigned:
                # Held-back partitions are left out of the call (pipeline.fetch_plan).
                batches = await consumer.getmany(
                    *fetchable, timeout_ms=100, max_records=max(1, max_records)
                )
            else:
                batches = {}
                self.room_freed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.room_freed.wait(), 0.1)
            for tp, fetched in batches.items():
                records = (
                    fetched
                    if self.replay is None
                    else await self.replay.within_range(self.consumer, tp, fetched)
                )
                if not records:
                    continue
                worker = self.workers.get(tp)
                if worker is None and tp in consumer.assignment() and tp not in self._revoking:
                    # Records can arrive while the assignment callback still runs.
                    worker = self._add_worker(tp)
                if worker is not None and not worker.stopping.is_set():
                    worker.offer(records)
                    self.metrics.inc("consumed", len(records))
            if self.replay is None and time.monotonic() >= self._next_gap_check:
                self._skip_gaps()
            self._reconcile_pauses()
            self._update_readiness()
            if self.replay is not None and await self.replay.finished(self.consumer, self.workers):
                log.info("replay %s reached the end of its range", self.replay.plan.name)
                self.request_stop()

    def _skip_gaps(self) -> None:
        """Count offsets the fetch passed over without a record as done, on idle partitions.

        A transaction's commit marker takes an offset and is never handed
        over, nor are aborted or compacted records; without this a worker
        reading a transactional topic would commit "last record + 1", which
        is the marker, and show lag 1 forever (never ready, failing liveness
        when idle, a phantom to the autoscaler). Replays settle their range
        ends themselves (ReplayGate.finished).
        """
        self._next_gap_check = time.monotonic() + GAP_CHECK_INTERVAL_S
        for tp, worker in self.workers.items():
            if not worker.idle:
                continue
            position = _known_position(self.consumer, tp)
            if position is not None and position > worker.tracker.committable:
                worker.tracker.skip_to(position)
                self.request_commit()

    def _reconcile_pauses(self) -> None:
        """A partition whose bulkhead is full is held back from the fetch until it drains."""
        for tp, worker in self.workers.items():
            if self.replay is not None and tp in self.replay.reached_end:
                continue  # a replay's partition past its range stays paused
            if tp in self.paused:
                if worker.may_resume():
                    self.paused.discard(tp)
            elif worker.wants_pause():
                self.paused.add(tp)

    def _update_readiness(self) -> None:
        if self.ready or not self._assignment_settled:
            return
        ends = self._start_end_offsets
        # Caught up: every record before the end offset seen at assignment is
        # finished, or there was none to begin with.
        self.ready = all(
            worker.tracker.committable >= ends.get(tp, 0) or tp in self._nothing_to_catch_up
            for tp, worker in self.workers.items()
        )
        if self.ready:
            log.info("caught up with the end offsets seen at assignment: ready")

    # -- commits ------------------------------------------------------------------------

    def _on_committer_done(self, committer: asyncio.Future[None]) -> None:
        if committer.cancelled() or committer.exception() is None:
            return
        error = committer.exception()
        log.error("the commit loop failed: %s: %s", type(error).__name__, error, exc_info=error)
        self.fail(f"the commit loop failed ({type(error).__name__})")

    async def _commit_loop(self) -> None:
        """Commit every interval or when asked, until the fetch loop has ended.

        It ends on a flag, not on cancellation alone: Python 3.11's wait_for
        swallows a cancel that lands as its timeout fires, and a loop that
        only a cancel can end then runs on, and the worker never exits.
        """
        while not self._fetching_done.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._commit_requested.wait(), self.options.commit_interval_s
                )
            self._commit_requested.clear()
            await self.commit(list(self.workers.values()))
            self.dead_letter_log.tick()
            self.retry_log.tick()

    async def commit(self, workers: list[PartitionWorker]) -> None:
        offsets = {
            worker.tp: worker.tracker.committable
            for worker in workers
            if worker.tracker.committable > worker.tracker.committed
        }
        if not offsets:
            return
        try:
            if self.replay is None:
                await self.consumer.commit(offsets)
            else:
                await self.replay.commit(self.consumer, offsets)
        except KafkaError as exc:
            # A rebalance is under way; the revoke handler commits what is finished.
            log.warning("commit of %d partitions failed (%s); will retry", len(offsets), exc)
            return
        for worker in workers:
            if worker.tp in offsets:
                worker.tracker.mark_committed(offsets[worker.tp])
        self.metrics.inc("commits")
        self.committed_signal.set()
        self.committed_signal.clear()

    # -- rebalance ------------------------------------------------------------------------

    def _add_worker(self, tp: TopicPartition) -> PartitionWorker:
        """A bulkhead whose start offset is the first record it gets (the fetch position)."""
        worker = PartitionWorker(tp, None, self.processor, self)
        self.workers[tp] = worker
        return worker

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        if self._stop_requested.is_set():
            # Leaving: the client may still complete a rebalance while it closes.
            # Nothing will fetch for new partitions, so take none on.
            log.info(
                "assigned %s while leaving; not taking them",
                sorted(tp.partition for tp in assigned),
            )
            return
        self.metrics.inc("rebalances")
        self._revoking.difference_update(assigned)
        # Workers first, with no await in between: the fetch loop may already
        # have records for these partitions.
        for tp in assigned:
            if tp not in self.workers:
                self._add_worker(tp)
        if self.replay is not None:
            self.replay.position(self.consumer, assigned)  # before any fetch: no await above
        if not assigned:
            return
        partitions = list(assigned)
        ends = await self.consumer.end_offsets(partitions)
        beginnings = await self.consumer.beginning_offsets(partitions)
        self._start_end_offsets.update(ends)
        for tp in partitions:
            committed = await self.consumer.committed(tp)
            start = committed if committed is not None else beginnings[tp]
            if start >= ends[tp]:
                self._nothing_to_catch_up.add(tp)
        self._assignment_settled = True
        log.info("assigned %s", sorted(tp.partition for tp in assigned))

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        # Until they are assigned again, records still arriving for these
        # partitions must not start a new worker behind the draining one.
        self._revoking.update(revoked)
        leaving = [self.workers.pop(tp) for tp in revoked if tp in self.workers]
        if not leaving:
            return
        clean = await self._drain(leaving)
        self.paused.difference_update(revoked)
        self._nothing_to_catch_up.difference_update(revoked)
        log.info(
            "revoked %s (%s)",
            sorted(tp.partition for tp in revoked),
            "drained" if clean else "drain incomplete",
        )

    async def _drain(self, workers: list[PartitionWorker]) -> bool:
        results = await asyncio.gather(
            *(worker.stop(self.options.drain_deadline_s) for worker in workers)
        )
        await self.commit(workers)
        return all(results)

    async def _shutdown(self) -> None:
        workers = list(self.workers.values())
        self.workers.clear()
        if workers:
            self.drain_clean = await self._drain(workers)
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

    # -- health ---------------------------------------------------------------------------

    def live(self) -> tuple[bool, str]:
        """Not live when a partition with lag has not advanced for `liveness_stall_s`."""
        now = time.monotonic()
        for tp, worker in self.workers.items():
            committed = worker.tracker.committed
            # A partition that never had a record here has no position yet (committed
            # is -1): it is idle, not behind, however long it stays empty.
            behind = (self.consumer.highwater(tp) or 0) - committed if committed >= 0 else 0
            lag = max(behind, worker.load)
            stalled = now - worker.last_progress
            if (
                lag > 0
                and stalled > self.options.liveness_stall_s
                and not worker.waiting_on_dependency
            ):
                return (
                    False,
                    f"{tp.topic}-{tp.partition} has lag {lag} and no progress for {stalled:.0f}s",
                )
        return True, "ok"

    def _register_gauges(self) -> None:
        def per_partition(read: str) -> dict[Labels, float]:
            values: dict[Labels, float] = {}
            for tp, worker in self.workers.items():
                labels = labels_of(topic=tp.topic, partition=tp.partition)
                if read == "queued":
                    values[labels] = len(worker.queue)
                elif read == "lag":
                    values[labels] = max(
                        0, (self.consumer.highwater(tp) or 0) - worker.tracker.committed
                    )
                elif read == "committed":
                    values[labels] = worker.tracker.committed
                elif read == "paused":
                    values[labels] = 1.0 if tp in self.paused else 0.0
            return values

        self.metrics.gauge(
            "partition_queued_records", lambda: per_partition("queued"), "records in a bulkhead"
        )
        self.metrics.gauge(
            "partition_lag_records", lambda: per_partition("lag"), "end offset minus committed"
        )
        self.metrics.gauge(
            "partition_committed_offset", lambda: per_partition("committed"), "last commit"
        )
        self.metrics.gauge(
            "partition_paused", lambda: per_partition("paused"), "1 while fetch is paused"
        )
        self.metrics.gauge(
            "held_records",
            lambda: {(): float(sum(worker.held for worker in self.workers.values()))},
            "records in memory: queued, being handled or awaiting acks",
        )
        self.metrics.gauge(
            "held_records_peak",
            lambda: {(): float(self.peak_held)},
            "most records held at once (bounded by --max-in-flight-records)",
        )
        self.metrics.gauge(
            "breaker_open",
            lambda: {
                labels_of(dependency=b.name): 0.0 if b.state is BreakerState.CLOSED else 1.0
                for b in self.breakers.all()
            },
            "1 while a dependency's circuit is open or half-open",
        )
        self.metrics.gauge(
            "breaker_state",
            lambda: {
                labels_of(dependency=b.name): float(b.state.level) for b in self.breakers.all()
            },
            "a dependency's circuit: 0 closed, 1 half-open (probing), 2 open",
        )
        self.metrics.gauge(
            "ready", lambda: {(): 1.0 if self.ready else 0.0}, "assigned and caught up"
        )


def _known_position(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int | None:
    """The next offset the consumer hands over for `tp`, or None while it has none.

    aiokafka's `position()` waits for a position; the fetch loop must not.
    This reads the same subscription state its `highwater()` reads.
    """
    subscription = consumer._subscription
    if not subscription.is_assigned(tp):
        return None
    state = subscription.subscription.assignment.state_value(tp)
    return state.position if state.has_valid_position else None


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """aiokafka awaits these around each rebalance (eager protocol)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.runtime.on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.runtime.on_assigned(set(assigned))
