"""Share groups through the port: on the in-memory broker and on Kafka 4.4 (confluent-kafka).

Every record goes to one member and an accepted one never comes back; a
released one comes back with its delivery count one higher, a rejected
one never, and one delivered as often as the group's limit is archived; a
member that leaves with records unacknowledged hands them to the others;
a poll before every record of the last one has an outcome is refused.
Where the client cannot do share groups the error says which to use.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence

import pytest

from pipeline.kafka.connect import connect
from pipeline.kafka.memory import MemoryClients
from pipeline.kafka.port import (
    SHARE_GROUP_DEFAULTS,
    Clients,
    KafkaClientError,
    NewTopic,
    Outcome,
    ProducerOptions,
    ShareConsumer,
    SharedRecord,
    ShareGroupsUnsupported,
    ShareOptions,
)
from pipeline.settings import PipelineSettings

Place = tuple[int, int]
NOT_UTF8 = b"\xff\xfe\x00 not text"


@pytest.fixture(params=["memory", pytest.param("confluent", marks=pytest.mark.integration)])
def clients(request: pytest.FixtureRequest) -> Clients:
    """Not aiokafka: it has no share groups (the last test)."""
    if request.param == "memory":
        return MemoryClients()
    bootstrap = request.getfixturevalue("kafka_bootstrap")
    return connect(PipelineSettings(bootstrap_servers=bootstrap, client="confluent"))


async def a_topic_with(
    clients: Clients, count: int, partitions: int = 3, odd_record: bool = False
) -> str:
    """`count` records k<n>/v<n> over the partitions; `odd_record`: one more on partition 0
    with no key, a value that is not UTF-8 and a header without a value."""
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
            if odd_record and partition == 0:
                assert batch.append(None, NOT_UTF8, None, [("empty", None)])
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


async def first_records(member: ShareConsumer, deadline: float) -> list[SharedRecord]:
    """Poll until something is acquired (its outcomes left to the caller)."""
    while time.monotonic() < deadline:
        records = await member.poll(1.0)
        if records:
            return records
    raise AssertionError("nothing acquired before the deadline")


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
    first = await first_records(member, deadline)
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
    held = await first_records(leaving, deadline)
    members.remove(leaving)
    await leaving.stop()  # nothing acknowledged
    staying = await join(clients, members, group, topic, max_records=4)
    back: list[SharedRecord] = []
    while len(back) < len(held) and time.monotonic() < deadline:
        back.extend(await take(staying, deadline))
    assert sorted(places(back)) == sorted(places(held))
    assert {r.delivery_count for r in back} == {2}


async def test_one_delivered_as_often_as_the_limit_is_archived(
    clients: Clients, members: list[ShareConsumer]
) -> None:
    topic = await a_topic_with(clients, 2, partitions=1)
    group = await a_share_group(clients, **{"share.delivery.count.limit": "2"})
    member = await join(clients, members, group, topic, max_records=10)
    deadline = time.monotonic() + 60
    deliveries: list[tuple[int, int]] = []
    while len(deliveries) < 4 and time.monotonic() < deadline:
        for record in await take(member, deadline, outcome="release"):
            deliveries.append((record.offset, record.delivery_count))
    assert sorted(deliveries) == [(0, 1), (0, 2), (1, 1), (1, 2)]
    assert await take(member, time.monotonic() + 3) == []  # archived: never a third time


async def test_a_poll_before_every_outcome_is_refused(
    clients: Clients, members: list[ShareConsumer]
) -> None:
    topic = await a_topic_with(clients, 3, partitions=1)
    group = await a_share_group(clients)
    member = await join(clients, members, group, topic, max_records=10)
    deadline = time.monotonic() + 60
    held = await first_records(member, deadline)
    with pytest.raises(KafkaClientError, match="IllegalState"):
        await member.poll(0.1)
    for record in held:
        await member.acknowledge(record, "accept")
    await member.commit()
    assert await member.poll(0.5) == []  # answered: polling goes on


def test_aiokafka_has_no_share_groups_and_says_which_client_has() -> None:
    aiokafka = connect(PipelineSettings(bootstrap_servers="127.0.0.1:9", client="aiokafka"))
    with pytest.raises(ShareGroupsUnsupported, match="needs the confluent client"):
        aiokafka.share_consumer(ShareOptions("g"))


async def test_a_record_whose_lock_expires_goes_to_another_member() -> None:
    """In memory only: the broker's shortest lock is 15 s
    (group.share.min.record.lock.duration.ms)."""
    clients = MemoryClients()
    topic = await a_topic_with(clients, 1, partitions=1)
    group = await a_share_group(clients, **{"share.record.lock.duration.ms": "200"})
    started: list[ShareConsumer] = []
    try:
        slow = await join(clients, started, group, topic)
        [held] = await slow.poll(1.0)
        fast = await join(clients, started, group, topic)
        back = await take(fast, time.monotonic() + 5)
        assert [(r.offset, r.delivery_count) for r in back] == [(held.offset, 2)]
    finally:
        for member in started:
            await member.stop()


async def test_a_record_without_a_key_with_bytes_that_are_not_text_comes_through_whole(
    clients: Clients, members: list[ShareConsumer]
) -> None:
    topic = await a_topic_with(clients, 0, partitions=1, odd_record=True)
    group = await a_share_group(clients)
    member = await join(clients, members, group, topic)
    [record] = await first_records(member, time.monotonic() + 60)
    assert (record.key, record.value, record.delivery_count) == (None, NOT_UTF8, 1)
    assert [(name, value) for name, value in record.headers] == [("empty", None)]
    await member.acknowledge(record, "accept")
    assert all(refusal is None for refusal in (await member.commit()).values())


async def test_the_backlog_counts_records_without_an_outcome_in_flight_ones_too(
    clients: Clients, members: list[ShareConsumer]
) -> None:
    """The admin reads a share group's lag per partition, what `pipeline lag` and the
    autoscaler show: unknown (-1) until a first outcome is written, then the records
    without one. (Kafka 4.4 may report a start offset that lags behind: not checked.)"""
    topic = await a_topic_with(clients, 10, partitions=1)
    group = await a_share_group(clients)
    admin = clients.admin()
    await admin.start()
    deadline = time.monotonic() + 60

    async def lag_reaches(expected: int) -> None:
        while True:
            found = await admin.share_group_backlog(group)
            lags = {tp.topic: b.lag for tp, b in found.items()}
            if lags.get(topic) == expected:
                return
            assert time.monotonic() < deadline, f"lag {lags}, not {expected}"
            await asyncio.sleep(0.2)

    try:
        assert await admin.share_group_backlog(f"share-never-{uuid.uuid4().hex[:8]}") == {}
        member = await join(clients, members, group, topic)
        held = await first_records(member, deadline)
        await lag_reaches(-1)  # in flight, and no outcome written yet: unknown
        for record in held[1:]:
            await member.acknowledge(record, "accept")
        await member.acknowledge(held[0], "release")
        answers = await member.commit()
        assert all(refusal is None for refusal in answers.values()), answers
        await lag_reaches(10 - len(held) + 1)  # the released one has no outcome yet
    finally:
        await admin.stop()


async def test_a_share_group_is_described_with_its_members(
    clients: Clients, members: list[ShareConsumer]
) -> None:
    """What `pipeline scale --recommend-only` counts and the console shows: consumer groups
    are described by another request, which knows nothing of share groups."""
    topic = await a_topic_with(clients, 3, partitions=2)
    group = await a_share_group(clients)
    admin = clients.admin()
    await admin.start()
    try:
        assert (await admin.describe_share_group(f"share-never-{uuid.uuid4().hex[:8]}")).state == (
            "Dead"
        )
        for n in range(2):
            member = clients.share_consumer(ShareOptions(group, client_id=f"slot-{n}"))
            await member.start()
            members.append(member)
            await member.subscribe([topic])
            await keep_polling(member, 0.5)  # a share member joins with its first fetch
        deadline = time.monotonic() + 30
        while len((described := await admin.describe_share_group(group)).members) < 2 or not all(
            m.assignment for m in described.members
        ):
            assert time.monotonic() < deadline, described
            for member in members:
                await keep_polling(member, 0.2)
        assert described.state == "Stable"
        assert sorted(m.client_id for m in described.members) == ["slot-0", "slot-1"]
        assert {tp.topic for m in described.members for tp in m.assignment} == {topic}
    finally:
        await admin.stop()


async def keep_polling(member: ShareConsumer, wait_s: float) -> None:
    """A poll that releases whatever it acquired: the member stays in, the records go back."""
    for record in await member.poll(wait_s):
        await member.acknowledge(record, "release")
