"""Batches reach the client one per partition at a time, none past a batch that failed, and
what waited goes out together."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from pipeline.kafka.port import Acknowledged, Headers
from pipeline.publishing.partition_order import BehindAFailedBatchError, Chain, PartitionOrder, Row


class Stored:
    def __init__(self, offset: int) -> None:
        self.offset = offset


class FakeBatch:
    def __init__(self, max_records: int) -> None:
        self.values: list[bytes | None] = []
        self.max_records = max_records

    def append(
        self, key: bytes | None, value: bytes | None, timestamp: int | None, headers: Headers
    ) -> bool:
        if self.values and len(self.values) >= self.max_records:
            return False
        self.values.append(value)
        return True

    def size(self) -> int:
        return 10 * len(self.values)


class Client:
    """Records what is handed over; each batch's ack is resolved by the test."""

    def __init__(self, max_records: int = 1000) -> None:
        self.max_records = max_records
        self.sent: list[tuple[int, list[bytes | None]]] = []
        self.acks: list[asyncio.Future[Acknowledged]] = []
        self.raise_next: BaseException | None = None

    def create_batch(self) -> FakeBatch:
        return FakeBatch(self.max_records)

    async def send_batch(
        self, batch: FakeBatch, topic: str, partition: int
    ) -> asyncio.Future[Acknowledged]:
        if self.raise_next is not None:
            error, self.raise_next = self.raise_next, None
            raise error
        self.sent.append((partition, list(batch.values)))
        ack: asyncio.Future[Acknowledged] = asyncio.get_running_loop().create_future()
        self.acks.append(ack)
        return ack


def rows(*values: str) -> list[Row]:
    return [(b"k", value.encode(), None, []) for value in values]


async def submit(
    order: PartitionOrder,
    client: Client,
    partition: int,
    records: Sequence[Row],
    chain: Chain | None = None,
) -> asyncio.Future[Acknowledged]:
    built = client.create_batch()
    for row in records:
        assert built.append(*row)
    return await order.submit("t", partition, built, records, chain)  # type: ignore[arg-type]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def order_for(client: Client, batch_bytes: int = 1000) -> PartitionOrder:
    return PartitionOrder(client, batch_bytes)  # type: ignore[arg-type]


async def test_what_waits_behind_an_unacknowledged_batch_goes_out_together_in_order() -> None:
    client = Client()
    order = order_for(client)
    first = await submit(order, client, 0, rows("a1", "a2"))
    second = await submit(order, client, 0, rows("b1"))  # the caller is not held up
    third = await submit(order, client, 0, rows("c1", "c2", "c3"))
    other = await submit(order, client, 1, rows("x"))
    await settle()
    assert client.sent == [(0, [b"a1", b"a2"]), (1, [b"x"])]  # other partitions go out meanwhile
    client.acks[0].set_result(Stored(10))
    await settle()
    assert client.sent[2] == (0, [b"b1", b"c1", b"c2", b"c3"])  # one batch, not two
    client.acks[2].set_result(Stored(12))
    client.acks[1].set_result(Stored(0))
    offsets = [(await future).offset for future in (first, second, third, other)]
    assert offsets == [10, 12, 13, 0]  # each submission learns where its first record went
    await order.wait_handed_over()


async def test_merging_stops_at_the_batch_limit_and_the_rest_waits_its_turn() -> None:
    client = Client()
    order = order_for(client, batch_bytes=50)  # 45 bytes merged: four records of 10
    await submit(order, client, 0, rows("a"))
    for name in ("b", "c", "d"):
        await submit(order, client, 0, rows(f"{name}1", f"{name}2"))
    client.acks[0].set_result(Stored(0))
    await settle()
    assert client.sent[1] == (0, [b"b1", b"b2", b"c1", b"c2"])
    client.acks[1].set_result(Stored(1))
    await settle()
    assert client.sent[2] == (0, [b"d1", b"d2"])


async def test_a_client_that_refuses_the_merged_batch_gets_fewer_submissions_in_it() -> None:
    client = Client(max_records=3)  # sizes records differently from the estimate
    order = order_for(client)
    await submit(order, client, 0, rows("a"))
    second = await submit(order, client, 0, rows("b1", "b2"))
    third = await submit(order, client, 0, rows("c1", "c2"))
    client.acks[0].set_result(Stored(0))
    await settle()
    assert client.sent[1] == (0, [b"b1", b"b2"])
    client.acks[1].set_result(Stored(1))
    await settle()
    assert client.sent[2] == (0, [b"c1", b"c2"])
    client.acks[2].set_result(Stored(3))
    assert ((await second).offset, (await third).offset) == (1, 3)


async def test_submissions_waiting_behind_a_failed_batch_fail_unsent_and_later_ones_go_out() -> (
    None
):
    client = Client()
    order = order_for(client)
    first = await submit(order, client, 0, rows("a"))
    second = await submit(order, client, 0, rows("b"))
    third = await submit(order, client, 0, rows("c"))
    client.acks[0].set_exception(RuntimeError("refused for good"))
    with pytest.raises(RuntimeError):
        await first
    with pytest.raises(BehindAFailedBatchError, match="t-0: the batch before it failed"):
        await second
    with pytest.raises(BehindAFailedBatchError):
        await third
    assert client.sent == [(0, [b"a"])]
    # Reported: a publish from now on is independent of the failed one.
    later = await submit(order, client, 0, rows("d"))
    client.acks[1].set_result(Stored(5))
    assert (await later).offset == 5
    assert client.sent == [(0, [b"a"]), (0, [b"d"])]


async def test_a_hand_over_that_raised_is_reported_and_the_next_batch_is_independent() -> None:
    client = Client()
    order = order_for(client)
    await submit(order, client, 0, rows("a"))
    client.raise_next = asyncio.CancelledError()
    with pytest.raises(asyncio.CancelledError):
        await submit(order, client, 1, rows("cancelled"))
    behind = await submit(order, client, 1, rows("b"))
    await settle()
    assert client.sent == [(0, [b"a"]), (1, [b"b"])]  # the cancelled one was reported
    client.acks[1].set_result(Stored(1))
    assert (await behind).offset == 1


async def test_a_chain_broken_by_a_failure_sends_none_of_its_later_publishes() -> None:
    """A worker that hands over batch N+1 after N's failure was reported, not yet learnt."""
    client = Client()
    order = order_for(client)
    worker, other = Chain(), Chain()
    first = await submit(order, client, 0, rows("n"), worker)
    client.acks[0].set_exception(RuntimeError("refused for good"))
    with pytest.raises(RuntimeError):
        await first
    assert worker.broken_by is not None
    late = await submit(order, client, 1, rows("n+1"), worker)
    with pytest.raises(BehindAFailedBatchError, match="an earlier publish of the same worker"):
        await late
    independent = await submit(order, client, 0, rows("other"), other)
    client.acks[1].set_result(Stored(3))
    assert (await independent).offset == 3
    assert client.sent == [(0, [b"n"]), (0, [b"other"])]
    assert other.broken_by is None


async def test_a_chain_waiting_behind_another_chains_failure_is_broken_too() -> None:
    client = Client()
    order = order_for(client)
    failing, waiting = Chain(), Chain()
    await submit(order, client, 0, rows("a"), failing)
    behind = await submit(order, client, 0, rows("b"), waiting)
    client.acks[0].set_exception(RuntimeError("refused"))
    with pytest.raises(BehindAFailedBatchError):
        await behind
    assert isinstance(waiting.broken_by, BehindAFailedBatchError)
    with pytest.raises(BehindAFailedBatchError):
        await (await submit(order, client, 0, rows("c"), waiting))
    assert client.sent == [(0, [b"a"])]
