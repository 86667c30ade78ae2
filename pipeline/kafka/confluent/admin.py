"""The port's Admin on confluent-kafka's AdminClient (its futures awaited on the loop)."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    ResourceType,
)
from confluent_kafka.admin import NewTopic as TheirNewTopic

from pipeline.errors import PipelineError
from pipeline.kafka.confluent.commits import GroupCommitReader
from pipeline.kafka.confluent.errors import translated
from pipeline.kafka.port import (
    Admin,
    Committed,
    GroupDescription,
    GroupMember,
    KafkaClientError,
    NewTopic,
    PartitionInfo,
    ShareBacklog,
    TopicPartition,
)

REQUEST_TIMEOUT_S = 15.0
T = TypeVar("T")


def refusal(exc: BaseException | None) -> str | None:
    """None for success, else the Kafka error's name and code (worded as the aiokafka adapter's)."""
    if exc is None:
        return None
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        error: KafkaError = exc.args[0]
        return f"{error.name()} (Kafka error code {error.code()}): {error.str()}"
    return f"{type(exc).__name__}: {exc}"


async def _outcome(future: concurrent.futures.Future[T]) -> BaseException | None:
    try:
        await asyncio.wrap_future(future)
    except KafkaException as exc:
        refused: BaseException = exc
        return refused
    return None


class ConfluentAdmin:
    def __init__(self, config: dict[str, Any], share_admin: Callable[[], Admin]) -> None:
        """`share_admin`: an admin that can describe share groups, which confluent-kafka
        2.16 cannot (the aiokafka adapter's, speaking the request itself)."""
        self._config = config
        self._client: AdminClient | None = None
        self._commit_reader = GroupCommitReader(config)
        self._share_admin = share_admin
        self._shares: Admin | None = None

    @property
    def client(self) -> AdminClient:
        if self._client is None:
            raise KafkaClientError("the admin client is not started (call start() first)")
        return self._client

    async def start(self) -> None:
        self._client = AdminClient(dict(self._config))

    async def stop(self) -> None:
        self._client = None
        shares, self._shares = self._shares, None
        try:
            if shares is not None:
                await shares.stop()
        finally:
            await self._commit_reader.close()

    async def _metadata(self, topic: str | None = None) -> Any:
        try:
            return await asyncio.to_thread(self.client.list_topics, topic, REQUEST_TIMEOUT_S)
        except KafkaException:
            # An admin serves its error callback only when polled: let it report why
            # (a refused login, an unknown CA) before the failure is translated.
            self.client.poll(0)
            raise

    @translated
    async def broker_count(self) -> int:
        return len((await self._metadata()).brokers)

    @translated
    async def describe_topics(self, names: Collection[str]) -> dict[str, list[PartitionInfo]]:
        if not names:
            return {}
        wanted = set(names)
        metadata = await self._metadata()
        found: dict[str, list[PartitionInfo]] = {}
        for name, topic in metadata.topics.items():
            if name not in wanted or topic.error is not None or not topic.partitions:
                continue
            found[name] = sorted(
                (
                    PartitionInfo(p.id, p.leader, list(p.replicas), list(p.isrs))
                    for p in topic.partitions.values()
                ),
                key=lambda info: info.partition,
            )
        return found

    @translated
    async def topic_configs(self, names: Collection[str]) -> dict[str, dict[str, str]]:
        if not names:
            return {}
        futures = self.client.describe_configs(
            [ConfigResource(ResourceType.TOPIC, name) for name in names],
            request_timeout=REQUEST_TIMEOUT_S,
        )
        result: dict[str, dict[str, str]] = {}
        for resource, future in futures.items():
            try:
                entries = await asyncio.wrap_future(future)
            except KafkaException as exc:
                raise PipelineError(
                    f"describing configs of {resource.name!r} failed: {refusal(exc)}"
                ) from exc
            result[resource.name] = {
                name: entry.value for name, entry in entries.items() if entry.value is not None
            }
        return result

    @translated
    async def create_topics(self, topics: Sequence[NewTopic]) -> dict[str, str | None]:
        if not topics:
            return {}
        futures = self.client.create_topics(
            [
                TheirNewTopic(t.name, t.partitions, t.replication_factor, config=dict(t.configs))
                for t in topics
            ],
            request_timeout=REQUEST_TIMEOUT_S,
        )
        answers: dict[str, str | None] = {}
        for name, future in futures.items():
            exc = await _outcome(future)
            existing = (
                isinstance(exc, KafkaException)
                and exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS
            )
            answers[name] = None if existing else refusal(exc)
        return answers

    @translated
    async def create_partitions(self, totals: Mapping[str, int]) -> None:
        if not totals:
            return
        futures = self.client.create_partitions(
            [NewPartitions(topic, total) for topic, total in totals.items()],
            request_timeout=REQUEST_TIMEOUT_S,
        )
        for future in futures.values():
            await asyncio.wrap_future(future)

    @translated
    async def set_topic_configs(
        self, configs: Mapping[str, Mapping[str, str]]
    ) -> dict[str, str | None]:
        if not configs:
            return {}
        resources = [
            ConfigResource(
                ResourceType.TOPIC,
                topic,
                incremental_configs=[
                    ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
                    for name, value in values.items()
                ],
            )
            for topic, values in configs.items()
        ]
        futures = self.client.incremental_alter_configs(
            resources, request_timeout=REQUEST_TIMEOUT_S
        )
        return {
            resource.name: refusal(await _outcome(future)) for resource, future in futures.items()
        }

    @translated
    async def set_group_configs(self, group: str, configs: Mapping[str, str]) -> str | None:
        resource = ConfigResource(
            ResourceType.GROUP,
            group,
            incremental_configs=[
                ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
                for name, value in configs.items()
            ],
        )
        futures = self.client.incremental_alter_configs(
            [resource], request_timeout=REQUEST_TIMEOUT_S
        )
        [future] = futures.values()
        return refusal(await _outcome(future))

    @translated
    async def group_commits(self, group: str) -> dict[TopicPartition, Committed]:
        """Read through a consumer of the group: the AdminClient's call can crash the process
        (pipeline.kafka.confluent.commits)."""
        return await self._commit_reader.commits(group)

    @translated
    async def list_groups(self) -> list[str]:
        future = self.client.list_consumer_groups(request_timeout=REQUEST_TIMEOUT_S)
        listed = await asyncio.wrap_future(future)
        return sorted({group.group_id for group in listed.valid})

    @translated
    async def describe_group(self, group: str) -> GroupDescription:
        futures = self.client.describe_consumer_groups([group], request_timeout=REQUEST_TIMEOUT_S)
        try:
            described = await asyncio.wrap_future(futures[group])
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND:
                return GroupDescription(group, "Dead", ())
            raise
        members = tuple(
            GroupMember(
                member.member_id,
                member.client_id,
                member.host.lstrip("/"),
                tuple(
                    sorted(
                        TopicPartition(tp.topic, tp.partition)
                        for tp in (member.assignment.topic_partitions if member.assignment else ())
                    )
                ),
            )
            for member in described.members
        )
        return GroupDescription(group, STATE_NAMES.get(described.state.name, "Unknown"), members)

    async def describe_share_group(self, group: str) -> GroupDescription:
        return await self._asking_share_admin(lambda admin: admin.describe_share_group(group))

    async def share_group_backlog(self, group: str) -> dict[TopicPartition, ShareBacklog]:
        return await self._asking_share_admin(lambda admin: admin.share_group_backlog(group))

    async def _asking_share_admin(self, ask: Callable[[Admin], Awaitable[T]]) -> T:
        """A question to the admin that speaks the share-group requests: opened at the first
        one and kept until stop(), so lag samples do not connect again each time."""
        if self._shares is None:
            admin = self._share_admin()
            await admin.start()
            self._shares = admin
        return await ask(self._shares)


STATE_NAMES = {
    "STABLE": "Stable",
    "EMPTY": "Empty",
    "DEAD": "Dead",
    "PREPARING_REBALANCING": "PreparingRebalance",
    "COMPLETING_REBALANCING": "CompletingRebalance",
}
"""librdkafka's group states in the words Kafka (and aiokafka) use."""
