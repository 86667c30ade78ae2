"""The port's Admin on aiokafka's AIOKafkaAdminClient."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from aiokafka.admin import NewPartitions
from aiokafka.admin import NewTopic as AioNewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.errors import KafkaError, for_code

from pipeline.errors import PipelineError
from pipeline.kafka.aiokafka.errors import translated
from pipeline.kafka.aiokafka.incremental_configs import (
    RESOURCE_GROUP,
    set_configs,
    set_topic_configs,
)
from pipeline.kafka.aiokafka.share_describe import describe_share_group
from pipeline.kafka.aiokafka.share_offsets import describe_share_group_offsets
from pipeline.kafka.coordinator_wait import asking_until_coordinated
from pipeline.kafka.port import (
    Committed,
    GroupDescription,
    GroupMember,
    NewTopic,
    PartitionInfo,
    ShareBacklog,
    TopicPartition,
)

TOPIC_ALREADY_EXISTS = 36
NOT_A_SHARE_GROUP = (69, 129)
"""GROUP_ID_NOT_FOUND, and GROUP_ID_NOT_FOUND's sibling for a group of another type."""


AUTHORIZATION_HINTS = {
    29: "no ACL lets this principal use the topic",
    30: "no ACL lets this principal use the consumer group",
    31: "no ACL lets this principal do this on the cluster",
    53: "no ACL lets this principal use the transactional id",
}


def refusal(code: int) -> str | None:
    """None for success, else the Kafka error's name and code (and for a denial, why)."""
    if not code:
        return None
    hint = AUTHORIZATION_HINTS.get(code)
    return f"{for_code(code).__name__} (Kafka error code {code}{'; ' + hint if hint else ''})"


def _raise_for(code: int, what: str) -> None:
    why = refusal(code)
    if why is not None:
        raise PipelineError(f"{what} failed: {why}")


class AioAdmin:
    def __init__(self, client: Any) -> None:
        self._client = client

    async def start(self) -> None:
        await self._client.start()

    async def stop(self) -> None:
        await self._client.close()

    @translated
    async def broker_count(self) -> int:
        cluster = await self._client.describe_cluster()
        return len(cluster["brokers"])

    @translated
    async def describe_topics(self, names: Collection[str]) -> dict[str, list[PartitionInfo]]:
        if not names:
            return {}
        found: dict[str, list[PartitionInfo]] = {}
        for topic in await self._client.describe_topics(list(names)):
            if topic["error_code"] or not topic["partitions"]:
                continue
            found[topic["topic"]] = sorted(
                (
                    PartitionInfo(p["partition"], p["leader"], list(p["replicas"]), list(p["isr"]))
                    for p in topic["partitions"]
                ),
                key=lambda info: info.partition,
            )
        return found

    @translated
    async def topic_configs(self, names: Collection[str]) -> dict[str, dict[str, str]]:
        if not names:
            return {}
        responses = await self._client.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        )
        result: dict[str, dict[str, str]] = {}
        for response in responses:
            for resource in response.to_object()["resources"]:
                _raise_for(
                    resource["error_code"], f"describing configs of {resource['resource_name']!r}"
                )
                result[resource["resource_name"]] = {
                    entry["config_names"]: entry["config_value"]
                    for entry in resource["config_entries"]
                }
        return result

    @translated
    async def create_topics(self, topics: Sequence[NewTopic]) -> dict[str, str | None]:
        if not topics:
            return {}
        response = await self._client.create_topics(
            [
                AioNewTopic(t.name, t.partitions, t.replication_factor, topic_configs=t.configs)
                for t in topics
            ]
        )
        return {
            error["topic"]: None
            if error["error_code"] == TOPIC_ALREADY_EXISTS
            else refusal(error["error_code"])
            for error in response.to_object()["topic_errors"]
        }

    @translated
    async def create_partitions(self, totals: Mapping[str, int]) -> None:
        if totals:
            await self._client.create_partitions(
                {topic: NewPartitions(total) for topic, total in totals.items()}
            )

    @translated
    async def set_topic_configs(
        self, configs: Mapping[str, Mapping[str, str]]
    ) -> dict[str, str | None]:
        if not configs:
            return {}
        answers = await set_topic_configs(self._client, {t: dict(c) for t, c in configs.items()})
        return {
            topic: None if not code else f"{refusal(code)}: {message or ''}".rstrip(": ")
            for topic, code, message in answers
        }

    @translated
    async def set_group_configs(self, group: str, configs: Mapping[str, str]) -> str | None:
        [(_, code, message)] = await set_configs(
            self._client, RESOURCE_GROUP, {group: dict(configs)}
        )
        return None if not code else f"{refusal(code)}: {message or ''}".rstrip(": ")

    async def group_commits(self, group: str) -> dict[TopicPartition, Committed]:
        """A group's commits, waiting out a coordinator still being elected.

        On a fresh cluster the offsets topic does not exist until the first
        group asks for it; until then the brokers answer "coordinator not
        available", a retriable error.
        """
        found = await asking_until_coordinated(
            lambda: self._client.list_consumer_group_offsets(group),
            lambda exc: isinstance(exc, KafkaError) and bool(exc.retriable),
        )
        return {
            TopicPartition(tp.topic, tp.partition): Committed(int(meta.offset), meta.metadata or "")
            for tp, meta in found.items()
        }

    @translated
    async def list_groups(self) -> list[str]:
        return sorted({str(listed[0]) for listed in await self._client.list_consumer_groups()})

    @translated
    async def describe_group(self, group: str) -> GroupDescription:
        for response in await self._client.describe_consumer_groups([group]):
            for described in response.groups:
                # (error_code, group_id, state, protocol_type, protocol, members, ...)
                if described[1] != group:
                    continue
                _raise_for(described[0], f"describing group {group!r}")
                return GroupDescription(
                    group, str(described[2]), tuple(_member(m) for m in described[5])
                )
        return GroupDescription(group, "Dead", ())

    @translated
    async def describe_share_group(self, group: str) -> GroupDescription:
        answer = await describe_share_group(self._client, group)
        if answer["error_code"] in NOT_A_SHARE_GROUP:
            return GroupDescription(group, "Dead", ())
        _raise_for(answer["error_code"], f"describing share group {group!r}")
        members = tuple(
            GroupMember(
                str(m["member_id"]),
                str(m["client_id"]),
                str(m["client_host"]).lstrip("/"),
                tuple(
                    sorted(
                        TopicPartition(assigned["topic_name"], p)
                        for assigned in m["assignment"]["topic_partitions"]
                        for p in assigned["partitions"]
                    )
                ),
            )
            for m in answer["members"]
        )
        return GroupDescription(group, str(answer["group_state"]), members)

    @translated
    async def share_group_backlog(self, group: str) -> dict[TopicPartition, ShareBacklog]:
        code, message, partitions = await describe_share_group_offsets(self._client, group)
        _raise_for(code, f"describing share group {group!r} ({message or 'no message'})")
        backlog = {}
        for topic, partition, start, lag, error, why in partitions:
            _raise_for(error, f"describing share group {group!r} on {topic}-{partition} ({why})")
            backlog[TopicPartition(topic, partition)] = ShareBacklog(start, lag)
        return backlog


def _member(described: Any) -> GroupMember:
    """(member_id, client_id, host, metadata, assignment bytes) from DescribeGroups."""
    member_id, client_id, host, _, assignment = described[:5]
    partitions: tuple[TopicPartition, ...] = ()
    if assignment:
        decoded = ConsumerProtocolMemberAssignment.decode(assignment)
        partitions = tuple(
            sorted(
                TopicPartition(topic, p) for topic, numbers in decoded.assignment for p in numbers
            )
        )
    return GroupMember(str(member_id), str(client_id), str(host).lstrip("/"), partitions)
