"""The port's Admin on the in-memory broker."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from pipeline.kafka.memory.cluster import MemoryBroker
from pipeline.kafka.port import (
    Committed,
    GroupDescription,
    GroupMember,
    NewTopic,
    PartitionInfo,
    ShareBacklog,
    TopicPartition,
)


class MemoryAdmin:
    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker

    async def start(self) -> None:
        self.broker.check_reachable()

    async def stop(self) -> None:
        return None

    async def broker_count(self) -> int:
        return 1

    async def describe_topics(self, names: Collection[str]) -> dict[str, list[PartitionInfo]]:
        found = {}
        for name in names:
            topic = self.broker.topics.get(name)
            if topic is not None:
                found[name] = [PartitionInfo(p.partition, 0, [0], [0]) for p in topic.partitions]
        return found

    async def topic_configs(self, names: Collection[str]) -> dict[str, dict[str, str]]:
        return {
            name: self.broker.topics[name].all_configs()
            for name in names
            if name in self.broker.topics
        }

    async def create_topics(self, topics: Sequence[NewTopic]) -> dict[str, str | None]:
        for topic in topics:
            if topic.name not in self.broker.topics:
                self.broker.create_topic(topic.name, topic.partitions, topic.configs)
        return {topic.name: None for topic in topics}

    async def create_partitions(self, totals: Mapping[str, int]) -> None:
        for name, total in totals.items():
            self.broker.grow_topic(name, total)

    async def set_topic_configs(
        self, configs: Mapping[str, Mapping[str, str]]
    ) -> dict[str, str | None]:
        answers: dict[str, str | None] = {}
        for name, values in configs.items():
            topic = self.broker.topics.get(name)
            if topic is None:
                answers[name] = f"UnknownTopicOrPartitionError: the topic {name!r} does not exist"
                continue
            topic.configs.update(values)
            answers[name] = None
        return answers

    async def set_group_configs(self, group: str, configs: Mapping[str, str]) -> str | None:
        self.broker.check_reachable()
        self.broker.group_configs.setdefault(group, {}).update(configs)
        return None

    async def group_commits(self, group: str) -> dict[TopicPartition, Committed]:
        return dict(self.broker.group(group).commits)

    async def list_groups(self) -> list[str]:
        self.broker.check_reachable()  # as a real admin's request fails with the broker gone
        return sorted(
            name for name, group in self.broker.groups.items() if group.members or group.commits
        )

    async def describe_group(self, group: str) -> GroupDescription:
        found = self.broker.groups.get(group)
        if found is None or not (found.members or found.commits):
            return GroupDescription(group, "Dead", ())
        members = tuple(
            GroupMember(
                f"memory-{index}-{id(member):x}",
                member.client_id,
                "memory",
                tuple(sorted(member.assignment())),
            )
            for index, member in enumerate(found.members)
        )
        return GroupDescription(group, "Stable" if members else "Empty", members)

    async def describe_share_group(self, group: str) -> GroupDescription:
        self.broker.check_reachable()
        found = self.broker.share_groups.get(group)
        if found is None:
            return GroupDescription(group, "Dead", ())
        members = tuple(
            GroupMember(f"memory-share-{key:x}", client_id, "memory", assignment)
            for key, (client_id, assignment) in found.members.items()
        )
        return GroupDescription(group, "Stable" if members else "Empty", members)

    async def share_group_backlog(self, group: str) -> dict[TopicPartition, ShareBacklog]:
        self.broker.check_reachable()
        found = self.broker.share_groups.get(group)
        if found is None:
            return {}
        backlog = {}
        for tp, next_new in found.starts.items():
            if tp not in found.written:
                backlog[tp] = ShareBacklog(-1, -1)  # as a broker answers before any outcome
                continue
            waiting = [offset for (at, offset) in found.unfinished if at == tp]
            end = self.broker.partition_log(tp).high_watermark
            start = min([next_new, *waiting])
            backlog[tp] = ShareBacklog(start, end - next_new + len(waiting))
        return backlog
