"""After a failed transaction nothing commits: offsets must never pass the aborted batch."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from aiokafka import TopicPartition

from pipeline.publishing.delivery import DeliveryList
from pipeline.runtime.host import Abandoned
from pipeline.runtime.transactions import TransactionalPublisher


class Client:
    """Stands in for aiokafka's transactional producer: records calls, fails one commit."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail_next_commit = True

    async def begin_transaction(self) -> None:
        self.calls.append("begin")

    async def send_offsets_to_transaction(self, offsets: object, group: object) -> None:
        self.calls.append(f"offsets {offsets}")

    async def commit_transaction(self) -> None:
        if self.fail_next_commit:
            self.fail_next_commit = False
            raise RuntimeError("the coordinator went away")
        self.calls.append("commit")

    async def abort_transaction(self) -> None:
        self.calls.append("abort")


async def group_metadata() -> object:
    return "group"


async def nothing_to_publish() -> list[asyncio.Future[DeliveryList]]:
    return []


async def test_a_failed_transaction_fails_every_later_batch_without_committing() -> None:
    client = Client()
    publisher = TransactionalPublisher(SimpleNamespace(client=client), group_metadata)  # type: ignore[arg-type]
    publisher.start()
    tp = TopicPartition("in", 0)
    try:
        first = publisher.submit(tp, 100, nothing_to_publish)
        with pytest.raises(RuntimeError, match="went away"):
            await first
        later = publisher.submit(tp, 200, nothing_to_publish)
        with pytest.raises(RuntimeError, match="went away"):
            await later
    finally:
        await publisher.stop()
    assert "commit" not in client.calls
    assert client.calls.count("begin") == 1, client.calls
    assert client.calls[-1] == "abort"


async def test_a_transaction_open_when_the_group_moved_on_is_aborted_not_committed() -> None:
    """A replica frozen past its session, thawed mid-transaction: nothing of it may commit."""
    client = Client()
    client.fail_next_commit = False
    answers = [False, True]

    async def still_member() -> bool:
        return answers.pop(0)

    publisher = TransactionalPublisher(
        SimpleNamespace(client=client),  # type: ignore[arg-type]
        group_metadata,
        still_member,
    )
    publisher.start()
    tp = TopicPartition("in", 0)
    try:
        with pytest.raises(Abandoned):
            await publisher.submit(tp, 100, nothing_to_publish)
        assert client.calls == ["begin", "abort"]
        # Not a failure: once a member again (reassigned), transactions commit.
        await publisher.submit(tp, 100, nothing_to_publish)
    finally:
        await publisher.stop()
    assert publisher.failed is None and publisher.dropped == 1
    assert client.calls[2:] == ["begin", f"offsets {{{tp!r}: 100}}", "commit"]
