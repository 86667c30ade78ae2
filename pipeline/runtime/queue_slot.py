"""One slot of a queue-mode replica: a share-group member handling one record at a time.

Poll → the record through the handler (pipeline.runtime.batch_handler: the
same fault boundary, deadline, dependency waits and flood guard as a
stream) → its outputs and dead letters published and acknowledged by the
brokers → its outcome to the group: ACCEPT when handled, REJECT when it was
dead-lettered (it is kept in the DLQ), RELEASE when it failed and may be
tried again, or its handling was called off. An outcome rides on the
slot's next poll, and the slot commits what is left when it stops.

A slot asks for one record at a time, so a slow one holds up nothing else;
but librdkafka's share consumer (2.16) acquires whole record batches as
the brokers hand them out (KIP-1206's strict record limit is not in it), so
a poll can bring several records of one producer batch. The slot handles
those one after another, and releases the rest unstarted when their lock
would run out before it reached them (LockClock), or on a stop.
"""

from __future__ import annotations

import asyncio
import logging

from pipeline.kafka.port import (
    KafkaClientError,
    Outcome,
    ShareConsumer,
    SharedRecord,
    ShareGroupsUnsupported,
    TopicPartition,
)
from pipeline.metric_names import DEAD_LETTERED, QUEUE_OUTCOMES
from pipeline.queue_delivery import DeliveryLimitReached
from pipeline.queue_policy import LOCK_MARGIN_S, MAX_DELIVERY_LIMIT
from pipeline.resilience.log_limit import RateLimitedLog
from pipeline.resilience.waiting import pause
from pipeline.runtime.batch_handler import BatchHandler
from pipeline.runtime.batch_publisher import BatchPublisher
from pipeline.runtime.batch_result import BatchResult
from pipeline.runtime.dead_letters import now_ms
from pipeline.runtime.host import Abandoned, HandlingParts, PublishingParts
from pipeline.runtime.outcomes import Released

log = logging.getLogger("pipeline.worker")

POLL_WAIT_S = 0.2
"""How long a poll waits for a record; also how soon an idle slot sees a stop."""
POLL_RETRY_S = 1.0
COMMIT_EVERY_S = 1.0
"""Within a poll of several records, how often their outcomes are committed."""


class QueueSlot:
    def __init__(
        self,
        name: str,
        consumer: ShareConsumer,
        handling: HandlingParts,
        publishing: PublishingParts,
        stopping: asyncio.Event,
        client_log: RateLimitedLog,
    ) -> None:
        """`stopping`: call off the record in hand (the drain deadline passed)."""
        self.name = name
        self.consumer = consumer
        self.handling = handling
        self.publishing = publishing
        self.stopping = stopping
        self.client_log = client_log
        source = handling.processor.source.name
        self.handler = BatchHandler(TopicPartition(source, -1), handling, stopping, releases=True)
        self.in_hand: SharedRecord | None = None
        self.started = False
        self.lock = LockClock(handling.processor.queue.record_lock_s)

    async def start(self) -> None:
        await self.consumer.start()
        self.started = True
        await self.consumer.subscribe([self.handling.processor.source.name])

    async def run(self, requested: asyncio.Event) -> None:
        """Take records one by one until a stop is requested; the last one is finished."""
        while not requested.is_set():
            try:
                records = await self.consumer.poll(POLL_WAIT_S)
            except ShareGroupsUnsupported:
                raise
            except KafkaClientError as exc:
                self.client_log.log(
                    logging.WARNING,
                    "%s: polling the share group failed: %s; retrying in %gs",
                    self.name,
                    exc,
                    POLL_RETRY_S,
                )
                await pause_unless(POLL_RETRY_S, requested)
                continue
            await self._take(records, requested)

    async def _take(self, records: list[SharedRecord], requested: asyncio.Event) -> None:
        """One poll's records in turn; those it could not start in time go back unstarted."""
        now = asyncio.get_running_loop().time
        acquired_at = committed_at = now()
        unstarted = 0
        for index, record in enumerate(records):
            stopping = requested.is_set()
            if stopping or (index and not self.lock.room_for_one(acquired_at, now())):
                await self._acknowledge(record, "release")
                unstarted += not stopping
                continue
            self.in_hand = record
            started = now()
            try:
                outcome = await self.settle(record)
            finally:
                self.in_hand = None
            self.lock.took(now() - started)
            await self._acknowledge(record, outcome)
            if index + 1 < len(records) and now() - committed_at >= COMMIT_EVERY_S:
                # A long poll's outcomes sent now, not at the next poll: a death redoes less.
                await self._commit()
                committed_at = now()
        if unstarted:
            self.client_log.log(
                logging.WARNING,
                "%s: a poll brought %d records (librdkafka acquires whole record batches); "
                "%d were released unstarted before their %gs lock ran out, each a delivery "
                "more. Smaller producer batches to this topic, or more slots, avoid it",
                self.name,
                len(records),
                unstarted,
                self.lock.lock_s,
            )

    async def settle(self, record: SharedRecord) -> Outcome:
        """Handle the record and store what it left; its outcome for the group."""
        if record.delivery_count >= MAX_DELIVERY_LIMIT:
            result = self._undelivered(record)  # the last the group allows: keep it
        else:
            try:
                result = await self.handler.handle([record])
            except (Released, Abandoned):
                return "release"
        tp = TopicPartition(record.topic, record.partition)
        publisher = BatchPublisher(tp, self.publishing, self.handler)
        try:
            await (await publisher.publish(result, record.offset + 1))
        except Abandoned:
            return "release"
        except Exception as exc:  # noqa: BLE001 - outputs not stored: the record goes back
            log.warning(
                "%s: the outputs of %s-%d@%d were not stored (%s: %s); releasing it to be "
                "delivered again",
                self.name,
                record.topic,
                record.partition,
                record.offset,
                type(exc).__name__,
                exc,
            )
            return "release"
        return "reject" if result.dead_letters else "accept"

    def _undelivered(self, record: SharedRecord) -> BatchResult:
        """The record's dead letter, its handler not run: no delivery of it ever ended."""
        handling = self.handling
        error = DeliveryLimitReached(
            record.topic, record.partition, record.offset, record.delivery_count - 1
        )
        result = BatchResult(limits=handling.record_path.limits)
        result.dead_letters.append(
            handling.record_path.dead_letter(record, error, record.delivery_count - 1, now_ms())
        )
        handling.metrics.inc(DEAD_LETTERED, labels={"error": type(error).__name__})
        log.error("%s (dead-lettered to %s)", error, handling.processor.source.dlq_name)
        return result

    async def _acknowledge(self, record: SharedRecord, outcome: Outcome) -> None:
        self.handling.metrics.inc(QUEUE_OUTCOMES, labels={"outcome": outcome})
        try:
            await self.consumer.acknowledge(record, outcome)
        except KafkaClientError as exc:
            # Its lock ran out first: the broker has handed it on already.
            self.client_log.log(
                logging.WARNING,
                "%s: %s-%d@%d could not be acknowledged %s (%s): another delivery of it "
                "follows (at-least-once)",
                self.name,
                record.topic,
                record.partition,
                record.offset,
                outcome,
                exc,
            )

    async def close(self) -> None:
        """Send the last outcomes and leave the group (its unacknowledged records go back)."""
        if not self.started:
            return
        try:
            await self._commit()
        finally:
            await self.consumer.stop()

    async def _commit(self) -> None:
        """Send the outcomes given so far; a refusal (a lock that ran out) is logged: those
        records are delivered again, duplicates, not losses."""
        try:
            refused = {tp: why for tp, why in (await self.consumer.commit()).items() if why}
        except KafkaClientError as exc:
            self.client_log.log(
                logging.WARNING, "%s: committing outcomes failed: %s", self.name, exc
            )
            return
        if refused:
            self.client_log.log(
                logging.WARNING, "%s: outcomes refused at a commit: %s", self.name, refused
            )


class LockClock:
    """Whether a record acquired with others can still be started before its lock runs out:
    the lock's margin and twice a typical record's time must be left."""

    def __init__(self, lock_s: float) -> None:
        self.lock_s = lock_s
        self.typical_s = 0.0
        """A moving average of the time a record takes, handled and stored."""

    def took(self, seconds: float) -> None:
        self.typical_s = seconds if not self.typical_s else 0.8 * self.typical_s + 0.2 * seconds

    def room_for_one(self, acquired_at: float, now: float) -> bool:
        return acquired_at + self.lock_s - now > LOCK_MARGIN_S + 2 * self.typical_s


async def pause_unless(seconds: float, requested: asyncio.Event) -> None:
    """Wait, or less when a stop is requested meanwhile."""
    try:
        await pause(seconds, requested)
    except Abandoned:
        return
