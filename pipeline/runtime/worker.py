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
import dataclasses
import logging
import time
from typing import Any

from pipeline.kafka.port import Clients, Consumer, ConsumerOptions
from pipeline.metrics import labels_of
from pipeline.ops.replay import ReplayPlan
from pipeline.paths import state_dir
from pipeline.processor import Processor
from pipeline.publishing.producer import EventProducer
from pipeline.resilience.log_limit import RateLimitedLog
from pipeline.resilience.tasks import cancel_and_wait
from pipeline.runtime import defaults
from pipeline.runtime.commits import Committer
from pipeline.runtime.fetch_plan import fetch_plan
from pipeline.runtime.gauges import register_worker_gauges
from pipeline.runtime.host import HandlingParts, PartitionParts, PublishingParts, StateParts
from pipeline.runtime.join_gate import wait_at
from pipeline.runtime.membership import MembershipGuard
from pipeline.runtime.opening import (
    EXIT_DRAIN_INCOMPLETE,
    EXIT_FAILED,
    EXIT_OK,
    Opened,
    StopSwitch,
    group_of,
    open_replica,
)
from pipeline.runtime.options import WorkerOptions
from pipeline.runtime.partitions import Partitions
from pipeline.runtime.pools import HandlerPools
from pipeline.runtime.replay_consumer import ReplayConsumer
from pipeline.runtime.standbys import Standbys
from pipeline.runtime.transactions import TransactionalPublisher
from pipeline.settings import PipelineSettings
from pipeline.stores.rocks import RocksBounds

log = logging.getLogger("pipeline.worker")

__all__ = [
    "EXIT_DRAIN_INCOMPLETE",
    "EXIT_FAILED",
    "EXIT_OK",
    "Runtime",
    "StopSwitch",
    "WorkerOptions",
]

HEARTBEAT_INTERVAL_MS = 1000
LEAVE_GROUP_DEADLINE_S = 15.0  # leaving can wait on a rebalance others hold up; work is committed
GAP_CHECK_INTERVAL_S = 1.0
COMMITTER_STOP_S = 5.0


def state_bounds() -> RocksBounds:
    """The stores' memory bounds, with one block cache for the whole process."""
    return RocksBounds(
        block_cache_bytes=defaults.STORE_BLOCK_CACHE_BYTES,
        write_buffer_bytes=defaults.STORE_WRITE_BUFFER_BYTES,
        max_write_buffers=defaults.STORE_WRITE_BUFFERS,
    ).sharing_one_cache()


class Runtime:
    """One replica: the process's services, its consumer and producer, its partitions.

    Made whole by `Runtime.open` (pipeline.runtime.opening): what needs a
    broker, a database or time is opened first, so no member is a stand-in.
    Its partition workers see only the parts it hands them (pipeline.runtime.host).
    """

    @classmethod
    async def open(
        cls,
        settings: PipelineSettings,
        processor: Processor[Any],
        options: WorkerOptions,
        clients: Clients,
        replay: ReplayPlan | None = None,
        switch: StopSwitch | None = None,
    ) -> Runtime | None:
        """The replica, opened; None when stopped first (`switch.exit_code` says how it ends).

        `clients` are the port's (pipeline.kafka.connect makes them from
        settings); `switch` lets the caller stop it while it opens.
        """
        switch = switch or StopSwitch()
        opened = await open_replica(settings, processor, options, clients, replay, switch)
        if opened is None:
            return None
        return cls(settings, processor, options, clients, opened, replay)

    def __init__(
        self,
        settings: PipelineSettings,
        processor: Processor[Any],
        options: WorkerOptions,
        clients: Clients,
        opened: Opened,
        replay: ReplayPlan | None = None,
    ) -> None:
        """Use `Runtime.open`: `opened` is what it opens."""
        self.settings = settings
        self.clients = clients
        self.processor = processor
        self.options = options
        self.replica_id = options.replica_id
        self.group_id = group_of(processor, replay)
        self.switch = opened.switch
        self.metrics = opened.metrics
        self.breakers = opened.breakers
        self.services = opened.services
        self.record_path = opened.record_path
        self._health = opened.health
        self.dead_letter_log = RateLimitedLog(log, "dead-lettered records")
        self.retry_log = RateLimitedLog(log, "retry lines")
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
        self._stop_requested = self.switch.requested
        self.pools = HandlerPools()
        self.drain_clean = True
        self.standbys: Standbys | None = None
        """Warm copies of other replicas' partitions (Processor.standbys; not in a replay)."""
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
        self.parts = PartitionParts(
            HandlingParts(
                processor,
                self.replica_id,
                self.metrics,
                self.breakers,
                self.services,
                self.record_path,
                self.dead_letter_log,
                self.retry_log,
                self.pools.executor_for,
                self.fail,
            ),
            PublishingParts(
                self.producer,
                self.transactions,
                self.membership,
                self.metrics,
                self.breakers,
                self.services,
            ),
            self.room_freed,
            self._state_parts(replay),
        )
        """What its partition workers may use of it, and nothing else (pipeline.runtime.host)."""
        self.partitions = Partitions(
            self.parts,
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
        if self._health is not None:
            self._health.runtime = self

    def _state_parts(self, replay: ReplayPlan | None) -> StateParts | None:
        if not self.processor.state_stores:
            return None
        parts = StateParts(
            self.clients,
            self.group_id,
            (self.options.store_dir or state_dir() / "stores") / self.group_id,
            state_bounds(),
            read_committed=self.processor.exactly_once,
        )
        if self.processor.standbys and replay is None:
            self.standbys = Standbys.of(self.processor, parts, self._member_name(), self.metrics)
            return dataclasses.replace(parts, handoff=self.standbys)
        return parts

    def _member_name(self) -> str | None:
        """How the group's description names this replica: needed only to place standbys."""
        return f"{self.settings.client_id}-{self.replica_id}" if self.processor.standbys else None

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
            client_id=self._member_name(),
        )

    # -- what partition workers, health checks and signals use ------------------------------

    @property
    def ready(self) -> bool:
        return self.partitions.ready

    @property
    def failure(self) -> str | None:
        return self.switch.failure

    @property
    def signalled(self) -> bool:
        return self.switch.signalled

    def fail(self, reason: str) -> None:
        self.switch.fail(reason)

    def request_stop(self) -> None:
        self.switch.request_stop()

    def in_hand(self) -> list[str]:
        """Records in a handler call now (read by the frozen-loop watchdog's thread)."""
        return self.partitions.in_hand()

    def uncommitted(self) -> int:
        return self.partitions.uncommitted()

    def live(self) -> tuple[bool, str]:
        """Not live when a partition with lag has not advanced for `liveness_stall_s`."""
        stalled = self.partitions.stalled(self.options.liveness_stall_s)
        return (False, stalled) if stalled else (True, "ok")

    # -- the main loop ----------------------------------------------------------------

    async def run(self) -> int:
        """Join, consume until asked to stop, drain, leave; the exit code says how it ended."""
        try:
            await self.producer.start()
            if self.transactions is not None:
                self.transactions.start()
            await self.consumer.start()
            if self.options.join_gate is not None:
                await wait_at(self.options.join_gate, self.replica_id, self._stop_requested)
            self.consumer.subscribe(self.processor.source.name, self.partitions)
            await self._consume()
        finally:
            if self._health is not None:
                await self._health.stop()
        if self.failure:
            log.error("worker failed: %s", self.failure)
            return EXIT_FAILED
        return EXIT_OK if self.drain_clean else EXIT_DRAIN_INCOMPLETE

    async def _consume(self) -> None:
        committer = asyncio.ensure_future(self.committer.run())
        committer.add_done_callback(self._on_committer_done)
        watch = asyncio.ensure_future(self.membership.run())
        standbys = asyncio.ensure_future(self.standbys.run()) if self.standbys else None
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
            if standbys is not None:
                await cancel_and_wait(standbys, COMMITTER_STOP_S, "the standbys")
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
            self.pools.shutdown()
            await self.services.close()
