"""Concurrent publishers' events, sent together: one batch per partition for all of them.

A gateway answers each HTTP request only after the brokers acknowledged its
events, so with fifty connections there are fifty small publishes in
flight; sent one batch each, they queue one behind the other on every hot
partition. Gathered, they go out as one batch per partition, and each
caller still gets exactly its own answer: the partition and offset of each
of its events, or the error of the batch that held them. A caller's events
stay together and in order, so per key order holds within a request.

When to send: at once when nothing of the topic is on its way (a lone
caller waits for no timer), else when what is on its way is acknowledged,
or after `linger_s`, or when `batch_bytes` wait, whichever comes first.
Under load the batches grow by themselves while the previous one is in
flight, the way Nagle's algorithm fills packets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple

from pipeline.errors import NotAcknowledgedError, PipelineError
from pipeline.kafka.port import Acknowledged
from pipeline.publishing.delivery import Delivery
from pipeline.wire.codec import EncodedEvent, payload_size


class SentBatch(NamedTuple):
    """A record batch handed to the client: its acknowledgement, partition and events."""

    ack: asyncio.Future[Acknowledged]
    partition: int
    indexes: list[int]


Send = Callable[[str, Sequence[EncodedEvent]], Awaitable[list[SentBatch]]]


class _Waiting(NamedTuple):
    events: Sequence[EncodedEvent]
    answer: asyncio.Future[list[Delivery]]


class Coalescer:
    def __init__(self, send: Send, linger_s: float, batch_bytes: int) -> None:
        self._send = send
        self.linger_s = linger_s
        self.batch_bytes = batch_bytes
        self._waiting: dict[str, list[_Waiting]] = {}
        self._bytes: dict[str, int] = {}
        self._in_flight: dict[str, int] = {}
        """Flushes per topic sent and not yet acknowledged."""
        self._tasks: set[asyncio.Future[None]] = set()

    async def publish(self, topic: str, events: Sequence[EncodedEvent]) -> list[Delivery]:
        """Where the brokers stored `events`, sent in a batch shared with concurrent callers."""
        answer: asyncio.Future[list[Delivery]] = asyncio.get_running_loop().create_future()
        waiting = self._waiting.setdefault(topic, [])
        waiting.append(_Waiting(events, answer))
        self._bytes[topic] = self._bytes.get(topic, 0) + sum(payload_size(e) for e in events)
        if len(waiting) == 1:
            if self._in_flight.get(topic, 0):
                self._spawn(self._flush_after_linger(topic))
            else:
                self._spawn(self._flush_soon(topic))
        elif self._bytes[topic] >= self.batch_bytes:
            self._spawn(self._flush(topic))
        return await answer

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush_after_linger(self, topic: str) -> None:
        await asyncio.sleep(self.linger_s)
        await self._flush(topic)

    async def _flush_soon(self, topic: str) -> None:
        """After the callers already woken in this turn of the loop have joined."""
        await asyncio.sleep(0)
        await self._flush(topic)

    async def _flush(self, topic: str) -> None:
        waiting = self._waiting.pop(topic, [])
        self._bytes.pop(topic, None)
        if not waiting:
            return
        events = [event for entry in waiting for event in entry.events]
        self._in_flight[topic] = self._in_flight.get(topic, 0) + 1
        try:
            try:
                sent = await self._send(topic, events)
            except Exception as exc:  # noqa: BLE001 - handed to every caller of this flush
                for entry in waiting:
                    if not entry.answer.done():
                        entry.answer.set_exception(exc)
                return
            acks = await asyncio.gather(*(batch.ack for batch in sent), return_exceptions=True)
        finally:
            self._in_flight[topic] -= 1
            if self._waiting.get(topic):
                self._spawn(self._flush(topic))  # what gathered meanwhile goes now
        stored: list[tuple[int, int] | BaseException | None] = [None] * len(events)
        for batch, ack in zip(sent, acks, strict=True):
            for position, index in enumerate(batch.indexes):
                stored[index] = (
                    _refused(topic, batch, ack)
                    if isinstance(ack, BaseException)
                    else (batch.partition, ack.offset + position)
                )
        start = 0
        for entry in waiting:
            end = start + len(entry.events)
            if not entry.answer.done():
                answer = _answer(topic, entry.events, stored[start:end])
                if isinstance(answer, BaseException):
                    entry.answer.set_exception(answer)
                else:
                    entry.answer.set_result(answer)
            start = end

    async def flush_all(self) -> None:
        """Send what is waiting now and wait for every flush (on the producer's stop)."""
        for topic in list(self._waiting):
            self._spawn(self._flush(topic))
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _refused(topic: str, batch: SentBatch, error: BaseException) -> PipelineError:
    return NotAcknowledgedError(topic, batch.partition, len(batch.indexes), error)


def _answer(
    topic: str,
    events: Sequence[EncodedEvent],
    stored: list[tuple[int, int] | BaseException | None],
) -> list[Delivery] | BaseException:
    """One caller's deliveries, or the error of a batch that held one of its events."""
    deliveries = []
    for event, where in zip(events, stored, strict=True):
        if isinstance(where, BaseException):
            return where
        if where is None:
            return AssertionError(f"event {event.event_id} of topic {topic!r} was in no batch")
        deliveries.append(Delivery(topic, where[0], where[1], event.event_id))
    return deliveries
