"""Consumer groups in memory: members, eager rebalances, commits.

A rebalance runs as Kafka's eager protocol does: every member's partitions
are taken away (its listener's `on_revoked` awaited), then the topic's
partitions are dealt out round-robin over the members in the order they
joined, and each member's `on_assigned` is awaited. Joining, leaving and
`MemoryBroker.rebalance` start one; rebalances of a group never overlap.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from pipeline.kafka.port import CommitMetadata, Committed, TopicPartition, metadata_of


class Member(Protocol):
    """What a group needs of a consumer (pipeline.kafka.memory.consumer)."""

    subscription: str | None
    client_id: str

    def set_assignment(self, partitions: set[TopicPartition]) -> None: ...

    def assignment(self) -> set[TopicPartition]: ...

    async def revoke_all(self) -> None: ...

    async def assign_from_group(self, partitions: set[TopicPartition]) -> None: ...


@dataclass
class Group:
    id: str
    partition_count: Callable[[str], int]
    """Partitions a topic has now (0 for one that does not exist)."""
    members: list[Member] = field(default_factory=list)
    commits: dict[TopicPartition, Committed] = field(default_factory=dict)
    generation: int = 0
    rebalances: int = 0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def join(self, member: Member) -> None:
        if member not in self.members:
            self.members.append(member)
        await self.rebalance()

    async def leave(self, member: Member) -> None:
        if member in self.members:
            self.members.remove(member)
            member.set_assignment(set())
        await self.rebalance()

    async def rebalance(self) -> None:
        async with self._lock:
            self.generation += 1
            self.rebalances += 1
            members = list(self.members)
            await asyncio.gather(*(member.revoke_all() for member in members))
            members = [m for m in self.members if m in members]  # one may have left meanwhile
            shares: dict[int, set[TopicPartition]] = {id(m): set() for m in members}
            topics = sorted({m.subscription for m in members if m.subscription})
            for topic in topics:
                interested = [m for m in members if m.subscription == topic]
                for partition in range(self.partition_count(topic)):
                    owner = interested[partition % len(interested)]
                    shares[id(owner)].add(TopicPartition(topic, partition))
            await asyncio.gather(
                *(member.assign_from_group(shares[id(member)]) for member in members)
            )

    def commit(self, offsets: dict[TopicPartition, int], metadata: CommitMetadata = "") -> None:
        for tp, offset in offsets.items():
            self.commits[tp] = Committed(offset, metadata_of(metadata, tp))
