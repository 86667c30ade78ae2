"""Offsets read straight from the brokers: log ends, and a group's commits and members."""

from __future__ import annotations

from pipeline.kafka.port import (
    Admin,
    Clients,
    Committed,
    ConsumerOptions,
    ShareBacklog,
    TopicPartition,
)


async def end_offsets(clients: Clients, topic: str) -> dict[int, int]:
    """Partition → offset the next record will get (the high watermark)."""
    consumer = clients.consumer(ConsumerOptions())
    await consumer.start()
    try:
        count = await consumer.partition_count(topic)
        partitions = [TopicPartition(topic, p) for p in range(count)]
        consumer.assign(partitions)
        offsets = await consumer.end_offsets(partitions)
        return {tp.partition: offset for tp, offset in offsets.items()}
    finally:
        await consumer.stop()


async def group_commits(clients: Clients, group: str) -> dict[TopicPartition, Committed]:
    """A group's commits (offset and metadata), with an admin connection of its own."""
    admin = clients.admin()
    await admin.start()
    try:
        return await admin.group_commits(group)
    finally:
        await admin.stop()


async def share_group_backlog(clients: Clients, group: str) -> dict[TopicPartition, ShareBacklog]:
    """A share group's start offsets and lag, with an admin connection of its own."""
    admin = clients.admin()
    await admin.start()
    try:
        return await admin.share_group_backlog(group)
    finally:
        await admin.stop()


async def group_member_count(clients: Clients, group: str) -> int:
    """Members the group has now (0 when it is empty or unknown), on an admin of its own."""
    admin = clients.admin()
    await admin.start()
    try:
        return await member_count(admin, group)
    finally:
        await admin.stop()


async def member_count(admin: Admin, group: str) -> int:
    """Members the group has now (0 when it is empty or unknown): one answer for every
    adapter, from the group's description."""
    return len((await admin.describe_group(group)).members)


async def committed_offsets(clients: Clients, group: str, topic: str) -> dict[int, int]:
    """Partition → the group's committed offset on `topic` (partitions never committed: absent)."""
    offsets = await group_commits(clients, group)
    return {
        tp.partition: found.offset
        for tp, found in offsets.items()
        if tp.topic == topic and found.offset >= 0
    }
