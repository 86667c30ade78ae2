"""What a handled batch leaves behind, put where it belongs: sink rows, dead letters, outputs.

The sink is written first, then (without transactions) the dead letters,
acknowledged before the outputs go out; outputs are handed to the producer
and their acknowledgement is what finishes the batch. The sink and the DLQ
are dependencies: a failure backs off and retries, the partition waits,
nothing crashes. With exactly-once, outputs and dead letters go into the
worker's next transaction with the batch's source offset.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pipeline.kafka.port import TopicPartition
from pipeline.metric_names import OUTPUTS, PROCESSED, SINK_ITEMS
from pipeline.publishing.delivery import DeliveryList
from pipeline.publishing.partition_order import Chain
from pipeline.publishing.settled import all_succeeded
from pipeline.resilience.breaker import DependencyError, DependencyUnavailable
from pipeline.runtime.batch_handler import LOGGED_MESSAGE_CHARS, BatchHandler
from pipeline.runtime.batch_result import BatchResult
from pipeline.runtime.dead_letters import describe_error
from pipeline.runtime.host import Abandoned, PublishingParts
from pipeline.stores.partition_state import BatchChanges
from pipeline.wire.codec import EncodedEvent, new_tuple

log = logging.getLogger("pipeline.worker")


class BatchPublisher:
    def __init__(self, tp: TopicPartition, parts: PublishingParts, handler: BatchHandler) -> None:
        self.tp = tp
        self.parts = parts
        self.processor = handler.processor
        self.handler = handler
        """Its sleep, back-off and dependency flag: waits here count as the partition's."""
        self.chain = Chain()
        """Without transactions, this partition's outputs: none is stored past one that
        failed, even when the worker has not learnt of the failure yet. (Dead letters are
        retried until kept, so they stay out of it.)"""

    async def publish(self, result: BatchResult, end_offset: int) -> asyncio.Future[Any]:
        """Hand the batch on; the future resolves when it is safely stored (or fails)."""
        if not await self.parts.membership.publishable():
            self.parts.membership.abandoned()
            raise Abandoned
        if result.sink_items:
            await self._write_sink(result.sink_items)
        transactions = self.parts.transactions
        if transactions is not None:

            async def publish() -> list[asyncio.Future[DeliveryList]]:
                futures = await self._submit_outputs(result, chain=None)
                if result.state_changes is not None:
                    futures += await self._submit_changelogs(result.state_changes, chain=None)
                if result.dead_letters:
                    dlq_topic = self.processor.source.dlq_name
                    futures.append(
                        await self.parts.producer.submit_encoded(dlq_topic, result.dead_letters)
                    )
                return futures

            done: asyncio.Future[Any] = transactions.submit(self.tp, end_offset, publish)
        else:
            if result.dead_letters:
                await self._publish_dead_letters(result.dead_letters)
            futures = await self._submit_outputs(result, self.chain)
            if result.state_changes is not None:
                futures += await self._submit_changelogs(result.state_changes, self.chain)
            done = all_succeeded(futures)
        metrics = self.parts.metrics
        metrics.inc(PROCESSED, result.processed)
        metrics.inc(OUTPUTS, sum(len(entry[1]) for entry in result.outputs.values()))
        return done

    async def _write_sink(self, items: list[Any]) -> None:
        """Write a batch's sink items, retrying until the sink takes them.

        The sink is a dependency, not the events' fault: failures back off
        and retry without limit (the partition waits, its queue fills and its
        fetch pauses); only stopping the partition abandons the batch.
        """
        sink = self.processor.sink
        assert sink is not None
        breaker = self.parts.breakers.get(sink.name)
        services = self.parts.services

        def failed(exc: BaseException, failures: int, delay: float) -> None:
            if isinstance(exc, DependencyError):
                log.warning(
                    "%s-%d: sink %s failed for a batch of %d (failure %d): %s",
                    self.tp.topic,
                    self.tp.partition,
                    sink.name,
                    len(items),
                    failures,
                    exc.__cause__,
                )

        await self.handler.wait_on(
            sink.name,
            lambda: breaker.call(lambda: sink.write(items, services)),
            (DependencyUnavailable, DependencyError),
            failed,
        )
        self.parts.metrics.inc(SINK_ITEMS, len(items), labels={"sink": sink.name})

    async def _submit_outputs(
        self, result: BatchResult, chain: Chain | None
    ) -> list[asyncio.Future[DeliveryList]]:
        """Hand a batch's outputs to the producer; futures of their acks."""
        producer = self.parts.producer
        futures: list[asyncio.Future[DeliveryList]] = []
        for encoder, encoded in result.outputs.values():
            futures.append(await producer.submit_encoded(encoder.spec.name, encoded, chain=chain))
        return futures

    async def _submit_changelogs(
        self, changes: BatchChanges, chain: Chain | None
    ) -> list[asyncio.Future[DeliveryList]]:
        """A batch's store changes to their changelogs, on the source's partition number."""
        state = self.handler.state
        assert state is not None
        partition = self.tp.partition
        futures: list[asyncio.Future[DeliveryList]] = []
        for store, keyed in changes.changes.items():
            if not keyed:
                continue
            records = [
                new_tuple(EncodedEvent, (key, value, [], "", partition))
                for key, value in keyed.items()
            ]
            acks = await self.parts.producer.submit_encoded(
                state.changelogs[store], records, chain=chain
            )
            changes.acks[store] = acks
            futures.append(acks)
        return futures

    async def _publish_dead_letters(self, records: list[EncodedEvent]) -> None:
        """Publish a batch's dead letters and wait for their acks, retrying until they are kept.

        The DLQ is a dependency like any other: when it cannot take a record
        (the topic is missing, the brokers are away, a limit set lower than
        the worker read) the partition backs off and waits; a crash would
        only bring the same batch back.
        """
        dlq_topic = self.processor.source.dlq_name
        producer = self.parts.producer

        async def publish() -> DeliveryList:
            return await (await producer.submit_encoded(dlq_topic, records))

        def failed(exc: BaseException, failures: int, delay: float) -> None:
            log.warning(
                "%s-%d: %d dead letter(s) could not be published to %s (attempt %d): "
                "%s: %s; the partition waits and retries in %.1fs "
                "(is the topic there? `pipeline topics apply` creates it)",
                self.tp.topic,
                self.tp.partition,
                len(records),
                dlq_topic,
                failures,
                type(exc).__name__,
                describe_error(exc)[0][:LOGGED_MESSAGE_CHARS],
                delay,
            )

        # Any failure to keep them: wait and retry (a crash would bring the batch back).
        await self.handler.wait_on(dlq_topic, publish, Exception, failed)
