"""Batches reach the client one per partition at a time, and none past a batch that failed."""

from __future__ import annotations

import asyncio

import pytest

from pipeline.kafka.partition_order import BehindAFailedBatchError, PartitionOrder


class Client:
    """Records the order of hand-overs; each batch's ack is resolved by the test."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.acks: dict[str, asyncio.Future[int]] = {}

    def sender(self, name: str):  # type: ignore[no-untyped-def]
        async def send() -> asyncio.Future[int]:
            self.sent.append(name)
            ack: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            self.acks[name] = ack
            return ack

        return send


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_partition_gets_its_next_batch_only_once_the_one_before_is_acknowledged() -> None:
    order, client = PartitionOrder(), Client()
    first = await order.send("t", 0, client.sender("a"))
    second = await order.send("t", 0, client.sender("b"))  # the caller is not held up
    other = await order.send("t", 1, client.sender("c"))
    await settle()
    assert client.sent == ["a", "c"]  # another partition goes out meanwhile
    client.acks["a"].set_result(10)
    await settle()
    assert client.sent == ["a", "c", "b"]
    client.acks["b"].set_result(11)
    client.acks["c"].set_result(0)
    assert (await first, await second, await other) == (10, 11, 0)
    await order.wait_handed_over()


async def test_batches_waiting_behind_a_failed_one_fail_unsent_and_later_ones_go_out() -> None:
    order, client = PartitionOrder(), Client()
    first = await order.send("t", 0, client.sender("a"))
    second = await order.send("t", 0, client.sender("b"))
    third = await order.send("t", 0, client.sender("c"))
    client.acks["a"].set_exception(RuntimeError("refused for good"))
    with pytest.raises(RuntimeError):
        await first
    with pytest.raises(BehindAFailedBatchError, match="t-0: the batch before it failed"):
        await second
    with pytest.raises(BehindAFailedBatchError):
        await third
    assert client.sent == ["a"]
    # Reported: a publish from now on is independent of the failed one.
    later = await order.send("t", 0, client.sender("d"))
    client.acks["d"].set_result(5)
    assert await later == 5
    assert client.sent == ["a", "d"]


async def test_a_hand_over_that_raised_is_reported_and_the_next_batch_is_independent() -> None:
    order, client = PartitionOrder(), Client()
    await order.send("t", 0, client.sender("a"))

    async def cancelled_send() -> asyncio.Future[int]:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await order.send("t", 1, cancelled_send)
    behind = await order.send("t", 1, client.sender("b"))
    await settle()
    assert client.sent == ["a", "b"]  # the cancelled one was reported: this one is independent
    client.acks["b"].set_result(1)
    assert await behind == 1
