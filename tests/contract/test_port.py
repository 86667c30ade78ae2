"""The Kafka port's behaviour, on the in-memory broker and on Apache Kafka alike."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest

from pipeline.kafka.metadata import TopicNotOnClusterError
from pipeline.kafka.port import (
    Clients,
    Committed,
    Consumer,
    ConsumerOptions,
    Headers,
    KafkaClientError,
    ProducerOptions,
    Record,
    TopicPartition,
)
from pipeline.reading.offsets import member_count
from tests.contract.conftest import create

Row = tuple[bytes | None, bytes | None, int | None, Headers]


async def produce(
    clients: Clients, topic: str, partition: int, rows: Sequence[Row], transactional: bool = False
) -> int:
    """Send rows as one batch; the offset of the first."""
    producer = clients.producer(ProducerOptions())
    await producer.start()
    try:
        batch = producer.create_batch()
        for key, value, timestamp, headers in rows:
            assert batch.append(key, value, timestamp, headers)
        ack = await (await producer.send_batch(batch, topic, partition))
        return ack.offset
    finally:
        await producer.stop()


async def read(
    consumer: Consumer, tp: TopicPartition, count: int, timeout_s: float = 15
) -> list[Record]:
    records: list[Record] = []
    deadline = time.monotonic() + timeout_s
    while len(records) < count and time.monotonic() < deadline:
        fetched = await consumer.fetch([tp], 0.2, 1000)
        records.extend(fetched.get(tp, []))
    return records


def reader(clients: Clients, **options: object) -> Consumer:
    return clients.consumer(ConsumerOptions(start="earliest", **options))  # type: ignore[arg-type]


async def test_records_come_back_in_order_byte_for_byte_with_nulls(
    clients: Clients, topic: str
) -> None:
    rows: list[Row] = [
        (b"k1", b"v1", 1_700_000_000_000, [("h", b"x"), ("empty", b""), ("null", None)]),
        (None, b"keyless", 1_700_000_000_001, []),
        (b"k2", None, 1_700_000_000_002, [("event-id", b"\xff\xfe")]),
    ]
    first = await produce(clients, topic, 1, rows)
    assert first == 0
    assert await produce(clients, topic, 1, rows[:1]) == 3
    consumer = reader(clients)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 1)
        consumer.assign([tp])
        got = await read(consumer, tp, 4)
        assert [r.offset for r in got] == [0, 1, 2, 3]
        assert [(r.key, r.value, r.timestamp) for r in got[:3]] == [
            (k, v, t) for k, v, t, _ in rows
        ]
        assert [list(r.headers) for r in got[:3]] == [list(h) for _, _, _, h in rows]
        assert all(r.topic == topic and r.partition == 1 for r in got)
        assert await consumer.position(tp) == 4
        assert consumer.highwater(tp) == 4
    finally:
        await consumer.stop()


async def test_log_offsets_and_offsets_for_times(clients: Clients, topic: str) -> None:
    rows: list[Row] = [(b"k", b"v", 1_000_000 + i * 1000, []) for i in range(5)]
    await produce(clients, topic, 0, rows)
    consumer = reader(clients)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        assert await consumer.beginning_offsets([tp]) == {tp: 0}
        assert await consumer.end_offsets([tp]) == {tp: 5}
        found = await consumer.offsets_for_times({tp: 1_002_500})
        assert found == {tp: 3}
        assert await consumer.offsets_for_times({tp: 9_999_999_999}) == {tp: None}
    finally:
        await consumer.stop()


async def test_pause_resume_and_seek(clients: Clients, topic: str) -> None:
    for partition in (0, 2):
        await produce(clients, topic, partition, [(b"k", b"%d" % i, None, []) for i in range(3)])
    consumer = reader(clients)
    await consumer.start()
    try:
        zero, two = TopicPartition(topic, 0), TopicPartition(topic, 2)
        consumer.assign([zero, two])
        consumer.pause(zero)
        assert len(await read(consumer, two, 3)) == 3
        assert await consumer.fetch([zero], 0.3, 100) == {}  # paused: nothing
        consumer.resume(zero)
        assert [r.offset for r in await read(consumer, zero, 3)] == [0, 1, 2]
        consumer.seek(two, 1)
        assert consumer.known_position(two) == 1
        assert [r.value for r in await read(consumer, two, 2)] == [b"1", b"2"]
    finally:
        await consumer.stop()


async def test_seeks_made_before_the_first_fetch_all_hold(clients: Clients, topic: str) -> None:
    for partition in range(3):
        await produce(clients, topic, partition, [(b"k", b"%d" % i, None, []) for i in range(5)])
    consumer = clients.consumer(ConsumerOptions(start="latest"))
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(3)]
        consumer.assign(tps)
        for tp, start in zip(tps, (3, 0, 4), strict=True):
            consumer.seek(tp, start)  # none of them fetching yet: each must still hold
        assert [r.offset for r in await read(consumer, tps[0], 2)] == [3, 4]
        assert [r.offset for r in await read(consumer, tps[1], 5)] == [0, 1, 2, 3, 4]
        assert [r.offset for r in await read(consumer, tps[2], 1)] == [4]
    finally:
        await consumer.stop()


async def test_a_position_counts_only_records_handed_over(clients: Clients, topic: str) -> None:
    """A committer skips idle partitions up to the position: it must not pass records
    fetched for a partition that was not asked for."""
    for partition in (0, 1):
        await produce(clients, topic, partition, [(b"k", b"%d" % i, None, []) for i in range(5)])
    consumer = reader(clients)
    await consumer.start()
    try:
        zero, one = TopicPartition(topic, 0), TopicPartition(topic, 1)
        consumer.assign([zero, one])
        assert len(await read(consumer, one, 5)) == 5
        for _ in range(3):  # long enough for a client to fetch partition 0 meanwhile
            assert await consumer.fetch([one], 0.2, 1000) == {}
        assert consumer.known_position(zero) in (None, 0)
        assert [r.offset for r in await read(consumer, zero, 5)] == [0, 1, 2, 3, 4]
        assert consumer.known_position(zero) == 5
    finally:
        await consumer.stop()


async def test_commits_keep_their_metadata_and_are_what_the_group_reads(
    clients: Clients, topic: str
) -> None:
    group = f"g-{topic}"
    consumer = clients.consumer(ConsumerOptions(group_id=group))
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.commit({tp: 5}, "range 0..9")
        assert await consumer.committed(tp) == Committed(5, "range 0..9")
        one = TopicPartition(topic, 1)
        consumer.assign([tp, one])
        await consumer.commit({tp: 6, one: 2}, {tp: "mine"})  # per partition; missing: ""
        assert await consumer.committed(tp) == Committed(6, "mine")
        assert await consumer.committed(one) == Committed(2, "")
        await consumer.commit({tp: 7})
        assert await consumer.committed(tp) == Committed(7, "")
    finally:
        await consumer.stop()
    admin = clients.admin()
    await admin.start()
    try:
        commits = await admin.group_commits(group)
        assert commits[tp] == Committed(7, "")
        assert await member_count(admin, group) == 0
    finally:
        await admin.stop()


async def test_a_missing_topic_is_named_quickly(clients: Clients, topic_name: str) -> None:
    consumer = clients.consumer(ConsumerOptions())
    await consumer.start()
    try:
        started = time.monotonic()
        with pytest.raises(TopicNotOnClusterError, match=topic_name):
            await consumer.partition_count(topic_name + ".missing", 0.5)
        assert time.monotonic() - started < 10
    finally:
        await consumer.stop()


async def test_transactions_are_seen_by_read_committed_readers_only_once_committed(
    clients: Clients, topic: str
) -> None:
    tp = TopicPartition(topic, 0)
    producer = clients.producer(ProducerOptions(transactional_id=f"tx-{topic}"))
    await producer.start()
    committed_reader = reader(clients, isolation="read_committed")
    everything = reader(clients, isolation="read_uncommitted")
    await committed_reader.start()
    await everything.start()
    try:
        committed_reader.assign([tp])
        everything.assign([tp])
        await producer.begin_transaction()
        batch = producer.create_batch()
        batch.append(b"k", b"a", None, [])
        batch.append(b"k", b"b", None, [])
        await (await producer.send_batch(batch, topic, 0))
        assert len(await read(everything, tp, 2)) == 2
        assert await committed_reader.fetch([tp], 0.5, 100) == {}  # still open
        assert await committed_reader.end_offsets([tp]) == {tp: 0}  # the last stable offset
        await producer.commit_transaction()
        assert [r.value for r in await read(committed_reader, tp, 2)] == [b"a", b"b"]
        await producer.begin_transaction()
        batch = producer.create_batch()
        batch.append(b"k", b"aborted", None, [])
        await (await producer.send_batch(batch, topic, 0))
        await producer.abort_transaction()
        # commit marker at 2, the aborted record at 3, its marker at 4
        end = (await committed_reader.end_offsets([tp]))[tp]
        assert end == 5
        assert await read(committed_reader, tp, 1, timeout_s=2) == []
        deadline = time.monotonic() + 10
        while await committed_reader.position(tp) < end and time.monotonic() < deadline:
            await committed_reader.fetch([tp], 0.2, 100)
        assert await committed_reader.position(tp) == end  # markers passed without records
    finally:
        await producer.stop()
        await committed_reader.stop()
        await everything.stop()


async def test_offsets_sent_with_a_transaction_are_committed_with_it(
    clients: Clients, topic: str
) -> None:
    group = f"g-{topic}"
    tp = TopicPartition(topic, 1)
    consumer = clients.consumer(ConsumerOptions(group_id=group))
    producer = clients.producer(ProducerOptions(transactional_id=f"tx-{topic}"))
    await consumer.start()
    await producer.start()
    try:
        await producer.begin_transaction()
        batch = producer.create_batch()
        batch.append(b"k", b"out", None, [])
        await (await producer.send_batch(batch, topic, 2))
        await producer.send_offsets_to_transaction({tp: 42}, await consumer.group_metadata())
        await producer.commit_transaction()
    finally:
        await producer.stop()
        await consumer.stop()
    admin = clients.admin()
    await admin.start()
    try:
        # The coordinator makes a transaction's offsets visible once it has its commit
        # marker, which can be a moment after commit_transaction returns (it failed once
        # in a clean-clone run): read until they show, within a deadline.
        deadline = time.monotonic() + 10
        while tp not in (commits := await admin.group_commits(group)):
            assert time.monotonic() < deadline, f"no commit for {tp} in {commits}"
            await asyncio.sleep(0.1)
        assert commits[tp].offset == 42
    finally:
        await admin.stop()


async def test_a_batch_over_the_topics_limit_is_refused(clients: Clients, topic_name: str) -> None:
    topic = await create(clients, topic_name, 1, **{"max.message.bytes": "2048"})
    producer = clients.producer(ProducerOptions())
    await producer.start()
    try:
        batch = producer.create_batch()
        batch.append(b"k", b"x" * 5000, None, [])
        with pytest.raises(KafkaClientError, match=r"MessageSizeTooLarge|MSG_SIZE_TOO_LARGE"):
            await (await producer.send_batch(batch, topic, 0))
    finally:
        await producer.stop()


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, set[TopicPartition]]] = []

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        self.events.append(("revoked", revoked))

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        self.events.append(("assigned", assigned))


async def wait_until(condition: object, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_group_members_share_the_partitions_and_take_over_when_one_leaves(
    clients: Clients, topic: str
) -> None:
    group = f"g-{topic}"
    members = [clients.consumer(ConsumerOptions(group_id=group)) for _ in range(2)]
    listeners = [Recorder(), Recorder()]
    everything = {TopicPartition(topic, p) for p in range(3)}

    async def poll(consumer: Consumer) -> None:
        while True:
            await consumer.fetch((), 0.1, 10)

    pollers = []
    try:
        for member, listener in zip(members, listeners, strict=True):
            member.subscribe(topic, listener)
            await member.start()
            pollers.append(asyncio.ensure_future(poll(member)))
            # One at a time, so the first has had everything before the second joins.
            await wait_until(lambda: bool(members[0].assignment()))
        await wait_until(
            lambda: (
                members[0].assignment() | members[1].assignment() == everything
                and not members[0].assignment() & members[1].assignment()
                and all(members[i].assignment() for i in (0, 1))
            )
        )
        # Eager: every rebalance revokes (the first revokes nothing), then assigns.
        assert listeners[0].events[:2] == [("revoked", set()), ("assigned", everything)]
        assert ("revoked", everything) in listeners[0].events
        admin = clients.admin()
        await admin.start()
        try:
            described = await admin.describe_group(group)
            deadline = time.monotonic() + 30
            while described.state != "Stable" and time.monotonic() < deadline:
                await asyncio.sleep(0.2)  # a real coordinator may still be completing the join
                described = await admin.describe_group(group)
            assert described.state == "Stable"
            assert {tp for m in described.members for tp in m.assignment} == everything
            assert {frozenset(m.assignment) for m in described.members} == {
                frozenset(members[0].assignment()),
                frozenset(members[1].assignment()),
            }
            assert group in await admin.list_groups()
            pollers[1].cancel()
            await members[1].stop()
            await wait_until(lambda: members[0].assignment() == everything)
            assert await member_count(admin, group) == 1
            missing = await admin.describe_group(group + ".never-used")
            assert missing.state == "Dead" and missing.members == ()
            assert group + ".never-used" not in await admin.list_groups()
        finally:
            await admin.stop()
    finally:
        for poller in pollers:
            poller.cancel()
        await asyncio.gather(*pollers, return_exceptions=True)
        for member in members:
            await member.stop()


async def test_admin_creates_describes_and_sets_configs_incrementally(
    clients: Clients, topic_name: str
) -> None:
    await create(clients, topic_name, 2, **{"retention.ms": "3600000"})
    admin = clients.admin()
    await admin.start()
    try:
        assert [p.partition for p in (await admin.describe_topics([topic_name]))[topic_name]] == [
            0,
            1,
        ]
        assert await admin.describe_topics([topic_name + ".nope"]) == {}
        assert await admin.set_topic_configs({topic_name: {"segment.ms": "7200000"}}) == {
            topic_name: None
        }
        # A broker answers from its metadata cache, which may lag the controller a moment.
        for _ in range(50):
            configs = (await admin.topic_configs([topic_name]))[topic_name]
            if configs["segment.ms"] == "7200000":
                break
            await asyncio.sleep(0.1)
        assert configs["retention.ms"] == "3600000"  # left alone
        assert configs["segment.ms"] == "7200000"
        assert configs["max.message.bytes"] == "1048588"
        await admin.create_partitions({topic_name: 4})
        for _ in range(50):
            if len((await admin.describe_topics([topic_name]))[topic_name]) == 4:
                break
            await asyncio.sleep(0.1)
        assert len((await admin.describe_topics([topic_name]))[topic_name]) == 4
        assert await admin.broker_count() >= 1
    finally:
        await admin.stop()
