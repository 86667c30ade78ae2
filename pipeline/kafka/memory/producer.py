"""The port's Producer on the in-memory broker: batches, limits, transactions, fencing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import NamedTuple

from pipeline.kafka.memory.cluster import MemoryBroker
from pipeline.kafka.memory.log import MemoryRecord, Transaction
from pipeline.kafka.port import (
    Acknowledged,
    Batch,
    Headers,
    KafkaClientError,
    ProducerOptions,
    TopicPartition,
)
from pipeline.kafka.record_size import record_size

FAILURE_DELAY_S = 0.02


def _out_of_order(tp: TopicPartition) -> KafkaClientError:
    return KafkaClientError(
        f"OutOfOrderSequenceNumber: a batch before this one on {tp.topic}-{tp.partition} failed"
    )


class Ack(NamedTuple):
    offset: int


class MemoryBatch:
    """Records for one partition; full at the producer's batch size (never for the first)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.records: list[tuple[bytes | None, bytes | None, int | None, Headers]] = []
        self._size = 61

    def append(
        self, key: bytes | None, value: bytes | None, timestamp: int | None, headers: Headers
    ) -> bool:
        size = record_size(key, value, headers) - 61
        if self.records and self._size + size > self.limit:
            return False
        self.records.append((key, value, timestamp, list(headers)))
        self._size += size
        return True

    def size(self) -> int:
        return self._size


class MemoryProducer:
    def __init__(self, broker: MemoryBroker, options: ProducerOptions) -> None:
        self.broker = broker
        self.options = options
        self._epoch = 0
        self._transaction: Transaction | None = None
        self._failing: dict[TopicPartition, asyncio.Future[Acknowledged]] = {}
        """Per partition, the last batch of a failure still in flight."""

    async def start(self) -> None:
        self.broker.check_reachable()
        if self.options.transactional_id is not None:
            self._epoch = self.broker.register_transactional(self.options.transactional_id)

    async def stop(self) -> None:
        if self._transaction is not None:
            self.broker.end_transaction(self._transaction, commit=False)
            self._transaction = None

    def _check_fenced(self) -> None:
        transactional_id = self.options.transactional_id
        if transactional_id is not None and self.broker.epoch(transactional_id) != self._epoch:
            raise KafkaClientError(
                f"ProducerFenced: a newer producer with transactional id {transactional_id!r} "
                "took over"
            )

    def create_batch(self) -> Batch:
        return MemoryBatch(self.options.batch_bytes)

    async def send_batch(
        self, batch: Batch, topic: str, partition: int
    ) -> asyncio.Future[Acknowledged]:
        """Stored at once, or failed; behind a batch of its partition still failing, failed too.

        An injected failure resolves after FAILURE_DELAY_S, as a broker's
        timeout does later than a success; batches sent to the partition
        meanwhile fail with it, as Kafka's idempotent producer fails the
        batches in flight behind a failed one (so none overtakes it).
        """
        assert isinstance(batch, MemoryBatch)
        loop = asyncio.get_running_loop()
        acked: asyncio.Future[Acknowledged] = loop.create_future()
        tp = TopicPartition(topic, partition)
        failing = self._failing.get(tp)
        if failing is not None and not failing.done():
            self._failing[tp] = acked
            failing.add_done_callback(lambda _: acked.set_exception(_out_of_order(tp)))
            return acked
        try:
            self.broker.check_reachable()
            self._check_fenced()
            if self.options.transactional_id is not None and self._transaction is None:
                raise KafkaClientError("IllegalStateError: no transaction has begun")
            try:
                await self.broker.maybe_fail("produce", topic)
            except KafkaClientError as injected:
                self._failing[tp] = acked
                loop.call_later(FAILURE_DELAY_S, acked.set_exception, injected)
                return acked
            log = self.broker.partition_log(tp)
            limit = int(self.broker.topic(topic).config("max.message.bytes"))
            if batch.size() > limit:
                raise KafkaClientError(
                    f"MessageSizeTooLargeError: a {batch.size()}-byte batch for {topic!r}, "
                    f"over its max.message.bytes of {limit}"
                )
        except KafkaClientError as exc:
            acked.set_exception(exc)
            return acked
        base = log.high_watermark
        now = int(time.time() * 1000)
        transaction = self._transaction
        for key, value, timestamp, headers in batch.records:
            record = MemoryRecord(
                topic,
                partition,
                log.high_watermark,
                now if timestamp is None else timestamp,
                key,
                value,
                headers,
            )
            self.broker.append(log, record, transaction)
        acked.set_result(Ack(base))
        return acked

    async def partition_count(self, topic: str, wait_s: float = 5.0) -> int:
        return await self.broker.partition_count(topic, wait_s)

    async def begin_transaction(self) -> None:
        self._check_fenced()
        if self._transaction is not None:
            raise KafkaClientError("IllegalStateError: a transaction is already open")
        self._transaction = self.broker.begin_transaction(self.options.transactional_id)

    async def send_offsets_to_transaction(
        self, offsets: Mapping[TopicPartition, int], group: object
    ) -> None:
        self._check_fenced()
        if not isinstance(group, str):
            raise TypeError(f"expected a memory consumer's group_metadata(), got {group!r}")
        if self._transaction is None:
            raise KafkaClientError("IllegalStateError: no transaction has begun")
        self._transaction.group = group
        self._transaction.offsets.update(
            {(tp.topic, tp.partition): offset for tp, offset in offsets.items()}
        )

    async def commit_transaction(self) -> None:
        self._check_fenced()
        await self.broker.maybe_fail("commit_transaction")
        if self._transaction is None:
            raise KafkaClientError("IllegalStateError: no transaction has begun")
        transaction, self._transaction = self._transaction, None
        self.broker.end_transaction(transaction, commit=True)

    async def abort_transaction(self) -> None:
        if self._transaction is None:
            return
        transaction, self._transaction = self._transaction, None
        self.broker.end_transaction(transaction, commit=False)
