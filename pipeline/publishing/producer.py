"""The shared producer: idempotent, acks=all, batches built per partition.

A client's per-record `send()` costs more Python than the rest of publishing
together; building record batches ourselves per partition and handing them
over whole costs a fraction of it (measured: docs/design-notes.md#producer-batches). Partitions
are picked with Kafka's murmur2 so a key lands where the Java client puts it.
A call returns only when the broker has acknowledged every record (acks=all
on the in-sync replicas), which is what lets a consumer commit its source
offset after publishing its outputs.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from types import TracebackType

from pydantic import BaseModel

from pipeline.catalogue import Catalogue, TopicSpec
from pipeline.errors import NotAcknowledgedError, PipelineError
from pipeline.kafka.connect import connect
from pipeline.kafka.partitioner import kafka_partition
from pipeline.kafka.port import Acknowledged, Batch, Clients, Producer, ProducerOptions
from pipeline.publishing.coalescer import Coalescer, SentBatch
from pipeline.publishing.delivery import AckedBatch, Delivery, DeliveryList
from pipeline.publishing.partition_order import Chain, PartitionOrder, Row
from pipeline.publishing.settled import all_settled
from pipeline.resilience.backpressure import ByteBudget
from pipeline.settings import PipelineSettings
from pipeline.telemetry import tracing
from pipeline.wire.codec import EncodedEvent, encode_event, encode_events
from pipeline.wire.registry import REGISTRY_FORMATS, configure_registry, registry_for


class EventProducer:
    """Publishes typed events to the catalogue's topics: one per process, shared by tasks.

    Three ways to publish, each for its own need:

    - `publish(topic, event)`: one event, acknowledged; concurrent calls share
      batches for `linger_ms`, so many small callers cost few requests.
    - `publish_many(topic, events)`: a list, in order, all validated before any
      is sent; returns once every one is acknowledged.
    - `submit_many(topic, events)`: the same, but returns once queued; await
      the future later. A bulk publisher keeps several in flight this way
      without breaking per-key order.

    Use it as `async with EventProducer(settings, catalogue) as producer`.
    Its other methods are internal (the runtime's and the gateway's) and
    may change.
    """

    def __init__(
        self,
        settings: PipelineSettings,
        catalogue: Catalogue | None = None,
        transactional_id: str | None = None,
        clients: Clients | None = None,
    ) -> None:
        """`clients` default to the cluster `settings` name (pipeline.kafka.connect)."""
        self.settings = settings
        self.catalogue = catalogue
        configure_registry(settings.schema_registry)
        tuning = settings.producer
        self._budget = ByteBudget(tuning.max_in_flight_bytes)
        self._linger_s = tuning.linger_ms / 1000
        self._batch_bytes = tuning.batch_bytes
        self._client = (clients or connect(settings)).producer(
            ProducerOptions(
                transactional_id=transactional_id,
                batch_bytes=tuning.batch_bytes,
                max_request_bytes=tuning.max_request_bytes,
                request_timeout_ms=tuning.request_timeout_ms,
                compression=tuning.compression,
                transaction_timeout_ms=tuning.transaction_timeout_ms,
            )
        )
        self._coalescer = Coalescer(self._send_batches, self._linger_s, self._batch_bytes)
        self._order = PartitionOrder(self._client, tuning.batch_bytes)
        self._started = False
        self._unkeyed = 0
        """Round-robin counter for records with neither key nor partition."""

    async def start(self) -> None:
        await self._client.start()
        self._started = True

    async def stop(self) -> None:
        """Flush what publish() is holding, wait for acknowledgements, close."""
        if not self._started:
            return
        await self._coalescer.flush_all()
        await self._order.wait_handed_over()
        await self._client.stop()
        self._started = False

    async def __aenter__(self) -> EventProducer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def client(self) -> Producer:
        """Internal: the port's producer, for transaction calls (pipeline.runtime.transactions)."""
        return self._client

    async def partition_count(self, topic: str, wait_s: float = 5.0) -> int:
        """Internal: partitions of `topic`; a clear error naming it when it does not exist."""
        return await self._client.partition_count(topic, wait_s)

    @property
    def in_flight_bytes(self) -> int:
        """Internal: bytes sent and not yet acknowledged (the byte budget's use)."""
        return self._budget.in_use

    def _spec(self, topic: str | TopicSpec[BaseModel]) -> TopicSpec[BaseModel]:
        if isinstance(topic, TopicSpec):
            return topic
        if self.catalogue is None:
            raise PipelineError(
                f"topic {topic!r} given by name but this producer has no catalogue; "
                "pass a TopicSpec or construct EventProducer(settings, catalogue)"
            )
        return self.catalogue.get(topic)

    async def publish(
        self,
        topic: str | TopicSpec[BaseModel],
        event: BaseModel,
        *,
        event_id: str | None = None,
        trace_id: str | None = None,
    ) -> Delivery:
        """Publish one event; concurrent calls share batches for `linger_ms`."""
        spec = self._spec(topic)
        if spec.format in REGISTRY_FORMATS:
            await registry_for(spec).prepare(spec)
        with tracing.producing(spec.name, 1) as traceparent:
            encoded = encode_event(
                spec, event, event_id=event_id, trace_id=trace_id, traceparent=traceparent
            )
            return (await self.publish_coalesced(spec.name, [encoded]))[0]

    async def publish_coalesced(
        self, topic: str, events: Sequence[EncodedEvent]
    ) -> Sequence[Delivery]:
        """Internal (the gateway's path): encoded events in batches shared with concurrent callers.

        For many small concurrent publishes, as a gateway's requests are:
        each call still gets exactly where each of its events was stored.
        """
        if self._linger_s <= 0:
            return await (await self.submit_encoded(topic, events))
        return await self._coalescer.publish(topic, events)

    async def publish_many(
        self,
        topic: str | TopicSpec[BaseModel],
        events: Sequence[BaseModel],
        *,
        trace_id: str | None = None,
    ) -> DeliveryList:
        """Publish events in order; all are validated before any is sent.

        Returns one Delivery per event, in the order given, once the broker has
        acknowledged all of them.
        """
        return await (await self.submit_many(topic, events, trace_id=trace_id))

    async def submit_many(
        self,
        topic: str | TopicSpec[BaseModel],
        events: Sequence[BaseModel],
        *,
        trace_id: str | None = None,
    ) -> asyncio.Future[DeliveryList]:
        """Like publish_many, but returns once queued; await the result for the acks."""
        spec = self._spec(topic)
        if spec.format in REGISTRY_FORMATS:
            await registry_for(spec).prepare(spec)
        with tracing.producing(spec.name, len(events)) as traceparent:
            encoded = encode_events(spec, events, trace_id=trace_id, traceparent=traceparent)
            return await self.submit_encoded(spec.name, encoded)

    def has_room(self, size_bytes: int) -> bool:
        """Internal: whether `size_bytes` more would go out without waiting for acks."""
        return self._budget.would_fit(size_bytes)

    async def submit_encoded(
        self,
        topic: str,
        events: Sequence[EncodedEvent],
        timestamps: Sequence[int] | None = None,
        chain: Chain | None = None,
    ) -> asyncio.Future[DeliveryList]:
        """Internal (DLQ, replay, the runtime's outputs): encoded records to the client.

        The returned future resolves on acknowledgement.

        `timestamps` (ms, one per event) keep records' original times, as a
        replay into another topic does; by default the broker's clock is used.
        A `chain`'s publishes are never stored past one of its failures
        (pipeline.publishing.partition_order).

        When this returns, every batch is queued behind anything submitted
        earlier for the same partition, so a caller may submit the next chunk
        before this one is acknowledged without breaking per-key order. That
        pipelining is what keeps a bulk publisher near the broker's speed;
        the byte budget bounds how far ahead it can get.
        """
        loop = asyncio.get_running_loop()
        if not events:
            done: asyncio.Future[DeliveryList] = loop.create_future()
            done.set_result(DeliveryList(topic, [], []))
            return done
        sent = await self._send_batches(topic, events, timestamps, chain)
        collected: asyncio.Future[DeliveryList] = loop.create_future()

        def collect(done: asyncio.Future[list[Acknowledged | BaseException]]) -> None:
            if collected.done():
                return
            try:
                collected.set_result(self._delivery_list(topic, events, sent, done.result()))
            except Exception as failure:  # noqa: BLE001 - NotAcknowledgedError or a bug: the caller gets it
                collected.set_exception(failure)

        all_settled([batch.ack for batch in sent]).add_done_callback(collect)
        return collected

    async def _send_batches(
        self,
        topic: str,
        events: Sequence[EncodedEvent],
        timestamps: Sequence[int] | None = None,
        chain: Chain | None = None,
    ) -> list[SentBatch]:
        """Queue `events` in record batches, one partition after another; their acks to await."""
        partitions = await self._client.partition_count(topic)
        by_partition: dict[int, list[int]] = defaultdict(list)
        for index, event in enumerate(events):
            if event.partition is not None:
                partition = event.partition % partitions
            elif event.key is not None:
                partition = kafka_partition(event.key, partitions)
            else:
                partition = self._unkeyed % partitions
                self._unkeyed += 1
            by_partition[partition].append(index)
        sent: list[SentBatch] = []
        try:
            for partition, indexes in by_partition.items():
                await self._send_partition(
                    topic, partition, events, indexes, sent, timestamps, chain
                )
        except BaseException:
            # Whatever was queued still goes out; wait for it so the budget is
            # returned and no acknowledgement is left unobserved.
            await asyncio.gather(*(batch.ack for batch in sent), return_exceptions=True)
            raise
        return sent

    @staticmethod
    def _delivery_list(
        topic: str,
        events: Sequence[EncodedEvent],
        sent: list[SentBatch],
        acknowledged: list[Acknowledged | BaseException],
    ) -> DeliveryList:
        """What was stored where, or NotAcknowledgedError for the first batch that was not."""
        batches: list[AckedBatch] = []
        for (_, partition, indexes), metadata in zip(sent, acknowledged, strict=True):
            if isinstance(metadata, BaseException):
                raise NotAcknowledgedError(topic, partition, len(indexes), metadata)
            batches.append(AckedBatch(partition, metadata.offset, indexes))
        return DeliveryList(topic, events, batches)

    async def _send_partition(
        self,
        topic: str,
        partition: int,
        events: Sequence[EncodedEvent],
        indexes: list[int],
        sent: list[SentBatch],
        timestamps: Sequence[int] | None = None,
        chain: Chain | None = None,
    ) -> None:
        batch = self._client.create_batch()
        rows: list[Row] = []
        batch_indexes: list[int] = []
        for index in indexes:
            event = events[index]
            row = (
                event.key,
                event.value,
                None if timestamps is None else timestamps[index],
                event.headers,
            )
            if not batch.append(*row):
                # Full; a first record always fits (the broker judges its size).
                sent.append(await self._submit(batch, rows, topic, partition, batch_indexes, chain))
                batch = self._client.create_batch()
                rows, batch_indexes = [], []
                batch.append(*row)
            rows.append(row)
            batch_indexes.append(index)
        if batch_indexes:
            sent.append(await self._submit(batch, rows, topic, partition, batch_indexes, chain))

    async def _submit(
        self,
        batch: Batch,
        rows: list[Row],
        topic: str,
        partition: int,
        indexes: list[int],
        chain: Chain | None,
    ) -> SentBatch:
        """Hand one batch to the client in its partition's turn (partition_order).

        aiokafka queues one batch per partition; concurrent callers waiting for
        that slot woke together on every drain, and its wait charges each
        wake-up the whole time waited so far, so under contention callers
        failed with KafkaTimeoutError after a fraction of the timeout. In turn,
        one batch per partition at a time, nobody waits for the slot.
        """
        size = batch.size()
        await self._budget.acquire(size)
        try:
            future = await self._order.submit(topic, partition, batch, rows, chain)
        except BaseException:
            self._budget.release(size)
            raise
        future.add_done_callback(lambda _: self._budget.release(size))
        return SentBatch(future, partition, indexes)
