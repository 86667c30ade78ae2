"""Incremental rebalances on the confluent client: only the partitions that move stop.

With eager rebalances (the contract suite) every member gives up everything
at each rebalance; with cooperative-sticky and KIP-848's consumer protocol a
member keeps what it keeps, and its listener hears only of what moves.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import pytest

from pipeline.kafka.connect import connect
from pipeline.kafka.port import Consumer, ConsumerOptions, NewTopic, TopicPartition
from pipeline.settings import PipelineSettings
from tests.contract.test_port import Recorder

pytestmark = pytest.mark.integration

PARTITIONS = 6


async def wait_until(condition: Callable[[], bool], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("protocol", ["cooperative", "consumer"])
async def test_a_joining_member_takes_partitions_without_stopping_the_rest(
    kafka_bootstrap: str, protocol: str
) -> None:
    settings = PipelineSettings(
        bootstrap_servers=kafka_bootstrap, client="confluent", rebalance_protocol=protocol
    )
    clients = connect(settings)
    topic = f"incremental.{uuid.uuid4().hex[:10]}"
    admin = clients.admin()
    await admin.start()
    try:
        assert await admin.create_topics([NewTopic(topic, PARTITIONS, 1)]) == {topic: None}
    finally:
        await admin.stop()
    group = f"g-{topic}"
    members = [clients.consumer(ConsumerOptions(group_id=group)) for _ in range(2)]
    listeners = [Recorder(), Recorder()]
    everything = {TopicPartition(topic, p) for p in range(PARTITIONS)}

    async def poll(consumer: Consumer) -> None:
        while True:
            await consumer.fetch((), 0.1, 10)

    pollers = []
    try:
        members[0].subscribe(topic, listeners[0])
        await members[0].start()
        pollers.append(asyncio.ensure_future(poll(members[0])))
        await wait_until(lambda: members[0].assignment() == everything)
        members[1].subscribe(topic, listeners[1])
        await members[1].start()
        pollers.append(asyncio.ensure_future(poll(members[1])))
        await wait_until(
            lambda: (
                bool(members[1].assignment())
                and members[0].assignment() | members[1].assignment() == everything
                and not members[0].assignment() & members[1].assignment()
            )
        )
        moved = members[1].assignment()
        revoked = [p for kind, p in listeners[0].events if kind == "revoked" and p]
        # The first member gave up exactly what the second took, and nothing else.
        assert revoked and set().union(*revoked) == moved, listeners[0].events
        assert ("revoked", everything) not in listeners[0].events
        # (cooperative-sticky gives a newcomer nothing in its first round, then the rest)
        assert [(kind, p) for kind, p in listeners[1].events if p] == [("assigned", moved)]
    finally:
        for poller in pollers:
            poller.cancel()
        await asyncio.gather(*pollers, return_exceptions=True)
        for member in members:
            await member.stop()
