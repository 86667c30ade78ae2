"""One slot of a queue-mode replica: a share-group member handling one record at a time.

Poll → the record through the handler (pipeline.runtime.batch_handler: the
same fault boundary, deadline, dependency waits and flood guard as a
stream) → its outputs and dead letters published and acknowledged by the
brokers → its outcome to the group: ACCEPT when handled, REJECT when it was
dead-lettered (it is kept in the DLQ), RELEASE when it failed and may be
tried again, or its handling was called off. An outcome rides on the
slot's next poll, and the slot commits what is left when it stops. A slot
never holds more than one record, so a slow one holds up nothing else.
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
            for record in records:
                self.in_hand = record
                try:
                    outcome = await self.settle(record)
                finally:
                    self.in_hand = None
                await self._acknowledge(record, outcome)

    async def settle(self, record: SharedRecord) -> Outcome:
        """Handle the record and store what it left; its outcome for the group."""
        if record.delivery_count > self.handling.processor.retry.attempts:
            result = self._undelivered(record)
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
            refused = {tp: why for tp, why in (await self.consumer.commit()).items() if why}
            if refused:
                log.warning("%s: outcomes refused at the last commit: %s", self.name, refused)
        except KafkaClientError as exc:
            log.warning("%s: the last commit of outcomes failed: %s", self.name, exc)
        finally:
            await self.consumer.stop()


async def pause_unless(seconds: float, requested: asyncio.Event) -> None:
    """Wait, or less when a stop is requested meanwhile."""
    try:
        await pause(seconds, requested)
    except Abandoned:
        return
