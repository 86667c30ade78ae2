"""The in-memory producer's failures behave as an idempotent Kafka producer's do."""

from __future__ import annotations

import pytest

from pipeline.kafka.memory import MemoryBroker, MemoryClients
from pipeline.kafka.port import Batch, KafkaClientError, ProducerOptions


async def test_batches_behind_a_failing_one_fail_with_it_and_later_ones_go_through() -> None:
    broker = MemoryBroker()
    broker.create_topic("t", 2)
    producer = MemoryClients(broker).producer(ProducerOptions())
    await producer.start()

    def batch(value: bytes) -> Batch:
        made = producer.create_batch()
        made.append(b"k", value, None, [])
        return made

    broker.fail("produce", times=1, topic="t")
    first = await producer.send_batch(batch(b"1"), "t", 0)
    behind = await producer.send_batch(batch(b"2"), "t", 0)
    other_partition = await producer.send_batch(batch(b"3"), "t", 1)
    assert not first.done()  # a failure takes a while, as a broker's timeout does
    with pytest.raises(KafkaClientError, match="injected"):
        await first
    with pytest.raises(KafkaClientError, match="OutOfOrderSequenceNumber"):
        await behind
    assert (await other_partition).offset == 0
    after = await producer.send_batch(batch(b"4"), "t", 0)
    assert (await after).offset == 0  # nothing of the failed ones was stored
    assert [e.record.value for e in broker.topic("t").partitions[0].entries if e.record] == [b"4"]
    await producer.stop()
