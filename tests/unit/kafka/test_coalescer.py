"""Shared batches, exact answers: each caller learns where its own events were stored."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import SimpleNamespace

import pytest

from pipeline.errors import PipelineError
from pipeline.publishing.coalescer import Coalescer, SentBatch
from pipeline.wire.codec import EncodedEvent


def event(key: str, event_id: str) -> EncodedEvent:
    return EncodedEvent(key.encode(), b"v", [], event_id)


class Broker:
    """Stands in for the producer's send: partition by the key's first letter, offsets counted."""

    def __init__(self, failing: set[int] | None = None) -> None:
        self.sends: list[list[str]] = []
        self.ends: dict[int, int] = {}
        self.failing = failing or set()

    async def send(self, topic: str, events: Sequence[EncodedEvent]) -> list[SentBatch]:
        self.sends.append([e.event_id for e in events])
        by_partition: dict[int, list[int]] = {}
        for index, item in enumerate(events):
            assert item.key is not None
            by_partition.setdefault(ord(item.key[:1]) % 3, []).append(index)
        sent = []
        for partition, indexes in by_partition.items():
            ack: asyncio.Future[object] = asyncio.get_running_loop().create_future()
            if partition in self.failing:
                ack.set_exception(TimeoutError("no answer"))
            else:
                base = self.ends.get(partition, 0)
                self.ends[partition] = base + len(indexes)
                ack.set_result(SimpleNamespace(offset=base))
            sent.append(SentBatch(ack, partition, indexes))
        return sent


async def test_concurrent_callers_share_one_send_and_get_their_own_answers() -> None:
    broker = Broker()
    coalescer = Coalescer(broker.send, linger_s=0.01, batch_bytes=1 << 20)
    calls = [
        [event("a", "a1"), event("b", "b1")],
        [event("a", "a2")],
        [event("c", "c1"), event("a", "a3"), event("b", "b2")],
    ]
    answers = await asyncio.gather(*(coalescer.publish("t", c) for c in calls))
    assert broker.sends == [["a1", "b1", "a2", "c1", "a3", "b2"]]  # one send, in arrival order
    where = {d.event_id: (d.partition, d.offset) for answer in answers for d in answer}
    # Per partition the offsets follow the order the events arrived in.
    assert [where[i] for i in ("a1", "a2", "a3")] == [(97 % 3, 0), (97 % 3, 1), (97 % 3, 2)]
    assert [d.event_id for d in answers[2]] == ["c1", "a3", "b2"]
    assert all(d.topic == "t" for answer in answers for d in answer)


async def test_a_failed_batch_fails_only_the_callers_with_events_in_it() -> None:
    broker = Broker(failing={98 % 3})  # the partition of keys starting with "b"
    coalescer = Coalescer(broker.send, linger_s=0.01, batch_bytes=1 << 20)
    results = await asyncio.gather(
        coalescer.publish("t", [event("a", "a1")]),
        coalescer.publish("t", [event("a", "a2"), event("b", "b1")]),
        return_exceptions=True,
    )
    assert [d.event_id for d in results[0]] == ["a1"]  # type: ignore[union-attr]
    assert isinstance(results[1], PipelineError)
    assert "partition 2" in str(results[1]) and "TimeoutError" in str(results[1])


async def test_enough_bytes_flush_before_the_linger_is_over() -> None:
    broker = Broker()
    coalescer = Coalescer(broker.send, linger_s=30, batch_bytes=4)
    answers = await asyncio.wait_for(
        asyncio.gather(*(coalescer.publish("t", [event("a", f"a{i}")]) for i in range(4))), 5
    )
    assert len(answers) == 4
    assert broker.sends == [["a0", "a1", "a2", "a3"]]


async def test_a_send_that_raises_reaches_every_caller() -> None:
    async def broken(topic: str, events: Sequence[EncodedEvent]) -> list[SentBatch]:
        raise PipelineError("topic 't' does not exist")

    coalescer = Coalescer(broken, linger_s=0.001, batch_bytes=1 << 20)
    with pytest.raises(PipelineError, match="does not exist"):
        await asyncio.gather(coalescer.publish("t", [event("a", "1")]), coalescer.publish("t", []))


async def test_a_lone_caller_waits_for_no_timer() -> None:
    broker = Broker()
    coalescer = Coalescer(broker.send, linger_s=30, batch_bytes=1 << 20)
    [delivery] = await asyncio.wait_for(coalescer.publish("t", [event("a", "a1")]), 1)
    assert delivery.event_id == "a1"


async def test_callers_arriving_during_a_send_go_together_once_it_is_acknowledged() -> None:
    gate = asyncio.Event()
    broker = Broker()

    async def slow_send(topic: str, events: Sequence[EncodedEvent]) -> list[SentBatch]:
        sent = await broker.send(topic, events)
        if len(broker.sends) == 1:
            await gate.wait()  # the first batch is still on its way
        return sent

    coalescer = Coalescer(slow_send, linger_s=30, batch_bytes=1 << 20)
    first = asyncio.ensure_future(coalescer.publish("t", [event("a", "a1")]))
    await asyncio.sleep(0.01)
    later = [asyncio.ensure_future(coalescer.publish("t", [event("b", f"b{i}")])) for i in range(3)]
    await asyncio.sleep(0.01)
    assert broker.sends == [["a1"]]  # the others wait for the batch in flight, not a timer
    gate.set()
    await asyncio.wait_for(asyncio.gather(first, *later), 1)
    assert broker.sends == [["a1"], ["b0", "b1", "b2"]]
