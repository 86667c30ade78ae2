"""The worker process of a queue-mode processor (Processor(delivery="queue")).

Its slots (pipeline.runtime.queue_slot) are members of the processor's
share group, each handling one record at a time; the replica has the
stream worker's services, producer, health server and stop switch, opened
the same way (pipeline.runtime.opening), and no partitions, commits or
rebalances: the share group hands records out and takes their outcomes.
SIGTERM stops the polls, lets the records in hand finish (up to the drain
deadline, after which they are released), sends the last outcomes and
leaves the group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from pipeline.kafka.port import Clients, ShareConsumer, ShareOptions
from pipeline.processor import Processor
from pipeline.publishing.producer import EventProducer
from pipeline.resilience.log_limit import RateLimitedLog
from pipeline.runtime.host import HandlingParts, PublishingParts
from pipeline.runtime.join_gate import wait_at
from pipeline.runtime.membership import MembershipGuard
from pipeline.runtime.opening import (
    EXIT_DRAIN_INCOMPLETE,
    EXIT_FAILED,
    EXIT_OK,
    Opened,
    StopSwitch,
    open_replica,
)
from pipeline.runtime.options import WorkerOptions
from pipeline.runtime.pools import HandlerPools
from pipeline.runtime.queue_slot import QueueSlot
from pipeline.settings import PipelineSettings

log = logging.getLogger("pipeline.worker")

LOG_TICK_S = 1.0
SLOT_CLOSE_S = 15.0
"""Sending the last outcomes and leaving, per slot; past it the broker's timeouts finish."""


async def still_member() -> bool:
    """A share group has no generation to lose: after a stall, publishing goes on; a record
    whose lock ran out meanwhile is delivered again, a duplicate, never a loss."""
    return True


class QueueRuntime:
    """One replica of a queue-mode processor: its slots and what they share."""

    @classmethod
    async def open(
        cls,
        settings: PipelineSettings,
        processor: Processor[Any],
        options: WorkerOptions,
        clients: Clients,
        switch: StopSwitch | None = None,
    ) -> QueueRuntime | None:
        """The replica, opened; None when stopped first (`switch.exit_code` says how).

        Its members are made first: a client without share groups (aiokafka) is refused
        before anything is opened.
        """
        switch = switch or StopSwitch()
        members = [
            clients.share_consumer(
                ShareOptions(
                    processor.group_id,
                    max_records=1,
                    client_id=f"{settings.client_id}-{options.replica_id}-{index}",
                )
            )
            for index in range(processor.queue.slots)
        ]
        opened = await open_replica(settings, processor, options, clients, None, switch)
        if opened is None:
            return None
        return cls(settings, processor, options, clients, members, opened)

    def __init__(
        self,
        settings: PipelineSettings,
        processor: Processor[Any],
        options: WorkerOptions,
        clients: Clients,
        members: list[ShareConsumer],
        opened: Opened,
    ) -> None:
        """Use `QueueRuntime.open`: `members` are the slots' share consumers."""
        self.processor = processor
        self.options = options
        self.replica_id = options.replica_id
        self.group_id = processor.group_id
        self.switch = opened.switch
        self.metrics = opened.metrics
        self.services = opened.services
        self._health = opened.health
        self.pools = HandlerPools()
        self.producer = EventProducer(settings, clients=clients)
        self.membership = MembershipGuard(still_member, processor.queue.record_lock_s, self.metrics)
        self.stopping = asyncio.Event()
        """Set when the drain deadline passes: the records in hand are released."""
        self.drain_clean = True
        handling = HandlingParts(
            processor,
            self.replica_id,
            self.metrics,
            opened.breakers,
            self.services,
            opened.record_path,
            RateLimitedLog(log, "dead-lettered records"),
            RateLimitedLog(log, "retry lines"),
            self.pools.executor_for,
            self.switch.fail,
        )
        publishing = PublishingParts(
            self.producer, None, self.membership, self.metrics, opened.breakers, self.services
        )
        client_log = RateLimitedLog(log, "share group lines")
        self._logs = (handling.dead_letter_log, handling.retry_log, client_log)
        self.slots = [
            QueueSlot(
                f"{self.group_id}/{self.replica_id}/slot-{index}",
                member,
                handling,
                publishing,
                self.stopping,
                client_log,
            )
            for index, member in enumerate(members)
        ]
        self._ready = False
        if self._health is not None:
            self._health.runtime = self

    # -- what health checks, the watchdog and signals use ----------------------------------

    @property
    def ready(self) -> bool:
        return self._ready and not self.switch.requested.is_set()

    @property
    def failure(self) -> str | None:
        return self.switch.failure

    def request_stop(self) -> None:
        self.switch.request_stop()

    def live(self) -> tuple[bool, str]:
        """A slot stuck in a call is the handler deadline's to end; the frozen loop, the
        watchdog's (pipeline.runtime.watchdog)."""
        return True, "ok"

    def in_hand(self) -> list[str]:
        """Records in a handler call now (read by the frozen-loop watchdog's thread)."""
        records = [slot.in_hand for slot in self.slots]
        return [f"{r.topic}-{r.partition}@{r.offset}" for r in records if r is not None]

    def uncommitted(self) -> int:
        return sum(slot.in_hand is not None for slot in self.slots)

    # -- the run ----------------------------------------------------------------------------

    async def run(self) -> int:
        """Join, take records until asked to stop, drain, leave; the exit code says how."""
        try:
            await self.producer.start()
            try:
                for slot in self.slots:
                    await slot.start()
                if self.options.join_gate is not None:
                    await wait_at(self.options.join_gate, self.replica_id, self.switch.requested)
                log.info(
                    "worker %s of share group %s taking records of %s in %d slot(s)",
                    self.replica_id,
                    self.group_id,
                    self.processor.source.name,
                    len(self.slots),
                )
                self._ready = True
                await self._work()
            finally:
                await self._shutdown()
        finally:
            if self._health is not None:
                await self._health.stop()
        if self.failure:
            log.error("worker failed: %s", self.failure)
            return EXIT_FAILED
        return EXIT_OK if self.drain_clean else EXIT_DRAIN_INCOMPLETE

    async def _work(self) -> None:
        requested = self.switch.requested
        watch = asyncio.ensure_future(self.membership.run())
        running = [asyncio.ensure_future(slot.run(requested)) for slot in self.slots]
        for task in running:
            task.add_done_callback(self._on_slot_done)
        try:
            while not requested.is_set():
                for rate_limited in self._logs:
                    rate_limited.tick()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(requested.wait(), LOG_TICK_S)
            _, pending = await asyncio.wait(running, timeout=self.options.drain_deadline_s)
            if pending:
                self.drain_clean = False
                log.warning(
                    "%d record(s) still in hand after the drain deadline of %gs: released "
                    "to the share group, to be delivered again",
                    len(pending),
                    self.options.drain_deadline_s,
                )
                self.stopping.set()
                await asyncio.wait(pending)
        finally:
            watch.cancel()
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    def _on_slot_done(self, task: asyncio.Future[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        log.error("a queue slot failed: %s: %s", type(error).__name__, error, exc_info=error)
        self.switch.fail(f"a queue slot failed ({type(error).__name__}: {error})")

    async def _shutdown(self) -> None:
        for slot in self.slots:
            closing = asyncio.ensure_future(slot.close())
            await asyncio.wait([closing], timeout=SLOT_CLOSE_S)
            if not closing.done():
                closing.cancel()
                log.warning("%s: leaving took over %gs; exiting anyway", slot.name, SLOT_CLOSE_S)
            elif closing.exception() is not None:
                log.warning("%s: leaving failed: %s", slot.name, closing.exception())
        for rate_limited in self._logs:
            rate_limited.flush()
        await self.producer.stop()
        self.pools.shutdown()
        await self.services.close()
