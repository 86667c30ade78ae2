"""One batch per partition with the client at a time, and none sent past a batch that failed.

A worker publishes a batch's outputs while the batch before is still
unacknowledged. aiokafka sends one batch per partition at a time, so the
records stay in order while all goes well; but when a batch fails for
good, the client goes on to send the next one, which is then stored ahead
of the failed batch's records (those come again only when the worker
handles the failed batch again). So a batch is handed to the client only
once the one before it on its partition is acknowledged, and a batch that
was waiting on a batch that failed fails too, unsent. A batch that arrives
after the failure was reported is an independent publish and goes out.

The caller is not held up: a batch that must wait gets a future at once
and is handed over by a task when its turn comes, so one call's batches
for other partitions go out meanwhile. Waiting here rather than in
aiokafka's queue costs an event-loop turn per batch (the client would not
send it before that acknowledgement either), and aiokafka's slot wait,
which charges each wake-up the whole time waited, sees no contention.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pipeline.kafka.port import KafkaClientError

AckT = TypeVar("AckT")
Send = Callable[[], Awaitable["asyncio.Future[AckT]"]]


class BehindAFailedBatchError(KafkaClientError):
    """Not sent: the batch before it on its partition failed, and this one would overtake it."""


class PartitionOrder:
    def __init__(self) -> None:
        self._tails: dict[tuple[str, int], asyncio.Future[None]] = {}
        """Per partition, the outcome of the last batch handed in (acknowledged or failed)."""
        self._waiting: set[asyncio.Future[None]] = set()

    async def send(self, topic: str, partition: int, send: Send[AckT]) -> asyncio.Future[AckT]:
        """`send` now, or once the partition's previous batch is acknowledged; its ack future."""
        key = (topic, partition)
        behind = self._tails.get(key)
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[None] = loop.create_future()
        self._tails[key] = outcome
        outcome.add_done_callback(lambda _: self._forget(key, outcome))
        if behind is None or behind.done():
            try:
                acked = await send()
            except BaseException as exc:
                _fail(outcome, exc)
                raise
            acked.add_done_callback(lambda done: _settle(outcome, done))
            return acked
        result: asyncio.Future[AckT] = loop.create_future()
        turn = asyncio.ensure_future(self._in_turn(topic, partition, behind, outcome, send, result))
        self._waiting.add(turn)
        turn.add_done_callback(self._waiting.discard)
        return result

    async def _in_turn(
        self,
        topic: str,
        partition: int,
        behind: asyncio.Future[None],
        outcome: asyncio.Future[None],
        send: Send[AckT],
        result: asyncio.Future[AckT],
    ) -> None:
        await asyncio.wait([behind])
        failure: BaseException | None = (
            KafkaClientError("cancelled") if behind.cancelled() else behind.exception()
        )
        if failure is not None:
            failure = BehindAFailedBatchError(
                f"not sent to {topic}-{partition}: the batch before it failed ({failure}), "
                "and this one would be stored ahead of its records"
            )
        else:
            try:
                acked = await send()
            except Exception as exc:  # noqa: BLE001 - handed to the caller through `result`
                failure = exc
            else:
                acked.add_done_callback(lambda done: _settle(outcome, done))
                acked.add_done_callback(lambda done: _copy(done, result))
                return
        _fail(outcome, failure)
        if not result.done():
            result.set_exception(failure)

    async def wait_handed_over(self) -> None:
        """Until every waiting batch was handed to the client or failed (before it stops)."""
        while self._waiting:
            await asyncio.wait(list(self._waiting))

    def _forget(self, key: tuple[str, int], outcome: asyncio.Future[None]) -> None:
        if self._tails.get(key) is outcome:
            del self._tails[key]


def _settle(outcome: asyncio.Future[None], acked: asyncio.Future[AckT]) -> None:
    failure = KafkaClientError("cancelled") if acked.cancelled() else acked.exception()
    if failure is not None:
        _fail(outcome, failure)
    elif not outcome.done():
        outcome.set_result(None)


def _copy(acked: asyncio.Future[AckT], result: asyncio.Future[AckT]) -> None:
    if result.done():
        return
    if acked.cancelled():
        result.cancel()
    elif acked.exception() is not None:
        result.set_exception(acked.exception())  # type: ignore[arg-type]
    else:
        result.set_result(acked.result())


def _fail(outcome: asyncio.Future[None], failure: BaseException) -> None:
    """Unsent or refused: whatever waits behind it must not overtake it (a cancelled one too)."""
    if not outcome.done():
        outcome.set_exception(
            failure if isinstance(failure, Exception) else KafkaClientError("cancelled, unsent")
        )
        outcome.exception()  # read: no batch may be waiting behind it to read it
