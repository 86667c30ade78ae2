"""The share-group adapter on a real broker (Kafka 4.4, confluent-kafka's ShareConsumer).

Every record goes to one member and an accepted one never comes back; a
released one comes back with its delivery count one higher, a rejected
one never; a member that leaves with records unacknowledged hands them to
the others. Where the client cannot do share groups the error says which
client to use.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence

import pytest

from pipeline.kafka.connect import connect
from pipeline.kafka.port import (
    SHARE_GROUP_DEFAULTS,
    Clients,
    NewTopic,
    Outcome,
    ProducerOptions,
    ShareConsumer,
    SharedRecord,
    ShareGroupsUnsupported,
    ShareOptions,
)
from pipeline.settings import PipelineSettings

pytestmark = pytest.mark.integration

Place = tuple[int, int]


@pytest.fixture
def clients(kafka_bootstrap: str) -> Clients:
    return connect(PipelineSettings(bootstrap_servers=kafka_bootstrap, client="confluent"))


async def a_topic_with(clients: Clients, count: int, partitions: int = 3) -> str:
    name = f"share.{uuid.uuid4().hex[:10]}"
    admin = clients.admin()
    await admin.start()
    try:
        assert await admin.create_topics([NewTopic(name, partitions, 1)]) == {name: None}
    finally:
        await admin.stop()
    producer = clients.producer(ProducerOptions())
    await producer.start()
    try:
        for partition in range(partitions):
            batch = producer.create_batch()
            for n in range(partition, count, partitions):
                assert batch.append(f"k{n}".encode(), f"v{n}".encode(), None, [])
            await (await producer.send_batch(batch, name, partition))
    finally:
        await producer.stop()
    return name


async def a_share_group(clients: Clients, **configs: str) -> str:
    group = f"share-{uuid.uuid4().hex[:10]}"
    admin = clients.admin()
    await admin.start()
    try:
        assert await admin.set_group_configs(group, {**SHARE_GROUP_DEFAULTS, **configs}) is None
    finally:
        await admin.stop()
    return group


@pytest.fixture
async def members(clients: Clients) -> AsyncIterator[list[ShareConsumer]]:
    started: list[ShareConsumer] = []
    yield started
    for member in started:
        await member.stop()


async def join(
    clients: Clients, started: list[ShareConsumer], group: str, topic: str, max_records: int = 5
) -> ShareConsumer:
    member = clients.share_consumer(ShareOptions(group, max_records=max_records))
    await member.start()
    started.append(member)
    await member.subscribe([topic])
    return member


async def take(
    member: ShareConsumer, until: float, outcome: Outcome = "accept"
) -> list[SharedRecord]:
    """Poll once (up to the deadline) and give every record acquired `outcome`."""
    records = await member.poll(max(0.0, min(1.0, until - time.monotonic())))
    for record in records:
        await member.acknowledge(record, outcome)
    if records:
        answers = await member.commit()
        assert all(refusal is None for refusal in answers.values()), answers
    return records


def places(records: Sequence[SharedRecord]) -> list[Place]:
    return [(r.partition, r.offset) for r in records]


async def test_each_record_goes_to_one_member_and_an_accepted_one_never_again(
    clients: Clients, members: list[ShareConsumer]
) -> None:
    topic = await a_topic_with(clients, 90)
    group = await a_share_group(clients)
    first, second = [await join(clients, members, group, topic) for _ in range(2)]
    got: dict[int, list[SharedRecord]] = {0: [], 1: []}
    deadline = time.monotonic() + 60

    async def work(n: int, member: ShareConsumer) -> None:
        while time.monotonic() < deadline and len(got[0]) + len(got[1]) < 90:
            got[n].extend(await take(member, deadline))

    await asyncio.gather(work(0, first), work(1, second))
    seen = Counter(places(got[0]) + places(got[1]))
    assert len(seen) == 90, f"{len(seen)} of 90 records delivered"
    assert max(seen.values()) == 1, "a record delivered twice"
    assert {r.delivery_count for r in got[0] + got[1]} == {1}
    assert all(r.value == f"v{r.key.decode()[1:]}".encode() for r in got[0] + got[1] if r.key)
    print(f"members took {len(got[0])} and {len(got[1])}")
    third = await join(clients, members, group, topic)
    assert await take(third, time.monotonic() + 3) == []  # accepted: never again


async def test_a_released_record_comes_back_counted_and_a_rejected_one_never(
    clients: Clients, members: list[ShareConsumer]
) -> None:
    topic = await a_topic_with(clients, 6, partitions=1)
    group = await a_share_group(clients)
    member = await join(clients, members, group, topic, max_records=10)
    deadline = time.monotonic() + 60
    first: list[SharedRecord] = []
    while not first and time.monotonic() < deadline:
        first = await member.poll(1.0)
    outcomes: dict[Place, Outcome] = {(0, 1): "release", (0, 2): "reject"}
    for record in first:
        await member.acknowledge(record, outcomes.get((record.partition, record.offset), "accept"))
    await member.commit()
    assert places(first) == [(0, n) for n in range(len(first))] and len(first) >= 3
    again: list[SharedRecord] = []
    while not again and time.monotonic() < deadline:
        again = await take(member, deadline)
    assert [(r.partition, r.offset, r.delivery_count) for r in again] == [(0, 1, 2)]
    later = await take(member, time.monotonic() + 3)
    assert (0, 2) not in places(later)  # rejected: never again


async def test_a_member_that_leaves_hands_its_unacknowledged_records_to_the_others(
    clients: Clients, members: list[ShareConsumer]
) -> None:
    topic = await a_topic_with(clients, 4, partitions=1)
    group = await a_share_group(clients, **{"share.record.lock.duration.ms": "15000"})
    leaving = await join(clients, members, group, topic, max_records=4)
    deadline = time.monotonic() + 60
    held: list[SharedRecord] = []
    while not held and time.monotonic() < deadline:
        held = await leaving.poll(1.0)
    members.remove(leaving)
    await leaving.stop()  # nothing acknowledged
    staying = await join(clients, members, group, topic, max_records=4)
    back: list[SharedRecord] = []
    while len(back) < len(held) and time.monotonic() < deadline:
        back.extend(await take(staying, deadline))
    assert sorted(places(back)) == sorted(places(held))
    assert {r.delivery_count for r in back} == {2}


@pytest.mark.parametrize("client", ["aiokafka", "memory"])
def test_a_client_without_share_groups_says_which_to_use(client: str) -> None:
    from pipeline.kafka.memory import MemoryClients

    chosen: Clients = (
        MemoryClients()
        if client == "memory"
        else connect(PipelineSettings(bootstrap_servers="127.0.0.1:9", client="aiokafka"))
    )
    expected = "does not model share groups" if client == "memory" else "needs the confluent client"
    with pytest.raises(ShareGroupsUnsupported, match=expected):
        chosen.share_consumer(ShareOptions("g"))
