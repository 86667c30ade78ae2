"""The port's Producer on confluent-kafka: librdkafka batches, sends and retries in C.

A port Batch is a list of records here; `send_batch` hands each to
librdkafka's queue for the partition (it keeps their order, idempotence
keeps it across retries) and answers with one future, resolved from the
delivery reports once every record of the batch is stored, or failed with
the first error. Delivery reports are served by a thread of this producer,
so the event loop never blocks on librdkafka.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from typing import Any, NamedTuple

from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka import TopicPartition as TheirPartition

from pipeline.kafka.confluent.errors import from_kafka_error, translated
from pipeline.kafka.metadata import DEFAULT_WAIT_S, TopicNotOnClusterError
from pipeline.kafka.port import Acknowledged, Batch, Headers, KafkaClientError, TopicPartition

POLL_SLICE_S = 0.05
QUEUE_FULL_WAIT_S = 0.01
RECORD_OVERHEAD_BYTES = 24
"""Per record in Kafka's v2 format, roughly: lengths, deltas, attributes."""
BATCH_OVERHEAD_BYTES = 61
CLOSE_TIMEOUT_S = 30.0
TRANSACTION_TIMEOUT_S = 60.0

Row = tuple[bytes | None, bytes | None, int, list[tuple[str, str | bytes | None]] | None]


class ConfluentBatch:
    __slots__ = ("_limit", "_size", "rows")

    def __init__(self, limit: int) -> None:
        self.rows: list[Row] = []
        self._size = BATCH_OVERHEAD_BYTES
        self._limit = limit

    def append(
        self, key: bytes | None, value: bytes | None, timestamp: int | None, headers: Headers
    ) -> bool:
        size = RECORD_OVERHEAD_BYTES + (len(key) if key else 0) + (len(value) if value else 0)
        for name, header_value in headers:
            size += len(name) + (len(header_value) if header_value else 0) + 2
        if self.rows and self._size + size > self._limit:
            return False
        self._size += size
        self.rows.append((key, value, timestamp or 0, list(headers) if headers else None))
        return True

    def size(self) -> int:
        return self._size


class Stored(NamedTuple):
    offset: int


class _BatchDelivery:
    """Counts one batch's delivery reports on the producer's poll thread."""

    __slots__ = ("error", "first_offset", "future", "loop", "remaining")

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int) -> None:
        self.loop = loop
        self.future: asyncio.Future[Acknowledged] = loop.create_future()
        self.remaining = count
        self.first_offset = -1
        self.error: KafkaError | None = None

    def __call__(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            if self.error is None:
                self.error = error
        elif self.first_offset < 0:
            self.first_offset = message.offset() or 0
        self.remaining -= 1
        if self.remaining == 0:
            self.loop.call_soon_threadsafe(self._settle)

    def _settle(self) -> None:
        if self.future.done():
            return
        if self.error is not None:
            self.future.set_exception(from_kafka_error(self.error))
        else:
            self.future.set_result(Stored(self.first_offset))


PARTITIONS_MAX_AGE_S = 30.0
"""How stale a partition count may be: a topic grown by `topics apply` is seen within this."""


class ConfluentProducer:
    def __init__(self, config: dict[str, Any], batch_bytes: int) -> None:
        self._config = config
        self._batch_bytes = batch_bytes
        self._client: Producer | None = None
        self._polling = threading.Event()
        self._poller: threading.Thread | None = None
        self._transactional = "transactional.id" in config
        self._partitions: dict[str, tuple[int, float]] = {}
        """Topic → (partition count, loop time it was read)."""

    @property
    def client(self) -> Producer:
        if self._client is None:
            raise KafkaClientError("the producer is not started (call start() first)")
        return self._client

    @translated
    async def start(self) -> None:
        self._client = Producer(dict(self._config))
        self._polling.set()
        self._poller = threading.Thread(target=self._poll, name="kafka-producer-poll", daemon=True)
        self._poller.start()
        if self._transactional:
            await asyncio.to_thread(self._client.init_transactions, TRANSACTION_TIMEOUT_S)

    def _poll(self) -> None:
        client = self._client
        assert client is not None
        while self._polling.is_set():
            client.poll(POLL_SLICE_S)

    async def stop(self) -> None:
        if self._client is None:
            return
        client = self._client
        await asyncio.to_thread(client.flush, CLOSE_TIMEOUT_S)
        self._polling.clear()
        if self._poller is not None:
            await asyncio.to_thread(self._poller.join, CLOSE_TIMEOUT_S)
        client.poll(0)
        self._client = None

    def create_batch(self) -> Batch:
        return ConfluentBatch(self._batch_bytes)

    @translated
    async def send_batch(
        self, batch: Batch, topic: str, partition: int
    ) -> asyncio.Future[Acknowledged]:
        assert isinstance(batch, ConfluentBatch)
        if not batch.rows:
            raise ValueError("an empty batch has nothing to acknowledge")
        client = self.client
        delivery = _BatchDelivery(asyncio.get_running_loop(), len(batch.rows))
        produce = client.produce
        for key, value, timestamp, headers in batch.rows:
            while True:
                try:
                    produce(
                        topic,
                        value,
                        key,
                        partition=partition,
                        on_delivery=delivery,
                        timestamp=timestamp,
                        headers=headers,
                    )
                    break
                except BufferError:
                    # librdkafka's queue is full: let deliveries free it, off the loop.
                    await asyncio.sleep(QUEUE_FULL_WAIT_S)
        return delivery.future

    async def partition_count(self, topic: str, wait_s: float = DEFAULT_WAIT_S) -> int:
        """From a cache refreshed every PARTITIONS_MAX_AGE_S, as aiokafka's metadata is.

        Asked for every batch sent: a metadata request each time cost a round
        trip per batch, and while a broker was down its 10 s timeout failed
        the batch and stopped the worker (`pipeline chaos run --client
        confluent -s leader-bounce`). A refresh that fails keeps the count it had.
        """
        now = asyncio.get_running_loop().time()
        cached = self._partitions.get(topic)
        if cached is not None and now - cached[1] < PARTITIONS_MAX_AGE_S:
            return cached[0]
        try:
            count = await self._partition_count(topic, wait_s)
        except KafkaClientError:
            if cached is None:
                raise
            self._partitions[topic] = (cached[0], now)  # try again after another max age
            return cached[0]
        self._partitions[topic] = (count, now)
        return count

    @translated
    async def _partition_count(self, topic: str, wait_s: float) -> int:
        deadline = asyncio.get_running_loop().time() + wait_s
        while True:
            metadata = await asyncio.to_thread(self.client.list_topics, topic, 10.0)
            found = metadata.topics.get(topic)
            if found is not None and found.error is None and found.partitions:
                return len(found.partitions)
            if asyncio.get_running_loop().time() >= deadline:
                raise TopicNotOnClusterError(topic, str(self._config["bootstrap.servers"]))
            await asyncio.sleep(0.2)

    @translated
    async def begin_transaction(self) -> None:
        self.client.begin_transaction()

    @translated
    async def send_offsets_to_transaction(
        self, offsets: Mapping[TopicPartition, int], group: object
    ) -> None:
        positions = [
            TheirPartition(tp.topic, tp.partition, offset) for tp, offset in offsets.items()
        ]
        await asyncio.to_thread(
            self.client.send_offsets_to_transaction, positions, group, TRANSACTION_TIMEOUT_S
        )

    @translated
    async def commit_transaction(self) -> None:
        await asyncio.to_thread(self.client.commit_transaction, TRANSACTION_TIMEOUT_S)

    @translated
    async def abort_transaction(self) -> None:
        await asyncio.to_thread(self.client.abort_transaction, TRANSACTION_TIMEOUT_S)
