"""Reading topics off the cluster and carrying out a TopicPlan.

Besides Kafka's own topic state we keep one compacted topic,
`_pipeline.catalogue`, holding the key field each topic was applied with:
Kafka has no place for it, and `topics apply` must refuse to re-key a topic.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import msgpack
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import for_code

from pipeline.catalogue import TopicSpec
from pipeline.errors import PipelineError
from pipeline.incremental_configs import set_topic_configs
from pipeline.settings import PipelineSettings
from pipeline.topic_plan import ObservedTopic, TopicPlan, plan_topics

REGISTRY_TOPIC = "_pipeline.catalogue"
MANAGED_CONFIGS = ("cleanup.policy", "retention.ms", "min.insync.replicas", "max.message.bytes")
TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True)
class PartitionInfo:
    partition: int
    leader: int
    replicas: list[int]
    isr: list[int]


def _raise_for(code: int, what: str) -> None:
    if code:
        error = for_code(code)
        raise PipelineError(f"{what} failed: {error.__name__} (Kafka error code {code})")


class TopicAdmin:
    """An admin connection with the handful of questions `topics` commands ask."""

    def __init__(self, settings: PipelineSettings) -> None:
        self.settings = settings
        self.admin = AIOKafkaAdminClient(**settings.client_kwargs(), request_timeout_ms=15_000)

    async def __aenter__(self) -> TopicAdmin:
        await self.admin.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.admin.close()

    async def broker_count(self) -> int:
        cluster = await self.admin.describe_cluster()
        return len(cluster["brokers"])

    async def partitions(self, names: list[str]) -> dict[str, list[PartitionInfo]]:
        """Partition layout of the topics that exist; missing ones are left out."""
        if not names:
            return {}
        found: dict[str, list[PartitionInfo]] = {}
        for topic in await self.admin.describe_topics(names):
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

    async def configs(self, names: list[str]) -> dict[str, dict[str, str]]:
        if not names:
            return {}
        responses = await self.admin.describe_configs(
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

    async def observe(self, names: list[str]) -> dict[str, ObservedTopic]:
        layouts = await self.partitions(names)
        configs = await self.configs(list(layouts))
        return {
            name: ObservedTopic(
                name=name,
                partitions=len(layout),
                replication_factor=len(layout[0].replicas),
                configs={key: configs[name].get(key, "") for key in MANAGED_CONFIGS},
            )
            for name, layout in layouts.items()
        }

    async def recorded_keys(self) -> dict[str, str]:
        """Topic → key field, as recorded by earlier applies (empty on a new cluster)."""
        if not await self.partitions([REGISTRY_TOPIC]):
            return {}
        consumer = AIOKafkaConsumer(**self.settings.client_kwargs(), enable_auto_commit=False)
        await consumer.start()
        try:
            partition = TopicPartition(REGISTRY_TOPIC, 0)
            consumer.assign([partition])
            await consumer.seek_to_beginning(partition)
            end = (await consumer.end_offsets([partition]))[partition]
            keys: dict[str, str] = {}
            deadline = time.monotonic() + 30
            while await consumer.position(partition) < end:
                if time.monotonic() > deadline:
                    raise PipelineError(
                        f"reading {REGISTRY_TOPIC!r} did not reach offset {end} within 30 s"
                    )
                batches = await consumer.getmany(partition, timeout_ms=1000)
                for record in batches.get(partition, []):
                    if record.value is None:
                        keys.pop(record.key.decode(), None)
                    else:
                        entry: dict[str, Any] = msgpack.unpackb(record.value)
                        keys[record.key.decode()] = entry["key_field"]
            return keys
        finally:
            await consumer.stop()

    async def apply(self, plan: TopicPlan, broker_count: int) -> None:
        """Carry out a plan without errors; the registry records every spec's key."""
        if plan.errors:
            raise PipelineError("refusing to apply a plan with errors:\n" + "\n".join(plan.errors))
        await self._ensure_registry(broker_count)
        creates = [change for change in plan.changes if change.action == "create"]
        if creates:
            response = await self.admin.create_topics(
                [
                    NewTopic(
                        change.topic,
                        change.partitions,
                        change.replication_factor,
                        topic_configs=change.configs,
                    )
                    for change in creates
                ]
            )
            for error in response.to_object()["topic_errors"]:
                _raise_for(error["error_code"], f"creating topic {error['topic']!r}")
        grow = {
            change.topic: NewPartitions(change.new_partitions)
            for change in plan.changes
            if change.new_partitions is not None
        }
        if grow:
            await self.admin.create_partitions(grow)
        reconfigure = {
            change.topic: {key: after for key, (_, after) in change.config_changes.items()}
            for change in plan.changes
            if change.config_changes
        }
        if reconfigure:
            # Incremental: only the configs that change; an operator's others stay.
            for topic, code, message in await set_topic_configs(self.admin, reconfigure):
                _raise_for(
                    code, f"updating configs of {topic!r}" + (f" ({message})" if message else "")
                )
        await self._record_keys([change.spec for change in plan.changes])

    async def _ensure_registry(self, broker_count: int) -> None:
        if await self.partitions([REGISTRY_TOPIC]):
            return
        replication = min(3, broker_count)
        response = await self.admin.create_topics(
            [
                NewTopic(
                    REGISTRY_TOPIC,
                    1,
                    replication,
                    topic_configs={
                        "cleanup.policy": "compact",
                        "min.insync.replicas": str(min(2, replication)),
                    },
                )
            ]
        )
        for error in response.to_object()["topic_errors"]:
            if error["error_code"] != TOPIC_ALREADY_EXISTS:
                _raise_for(error["error_code"], f"creating {REGISTRY_TOPIC!r}")

    async def _record_keys(self, specs: list[TopicSpec]) -> None:
        producer = AIOKafkaProducer(**self.settings.client_kwargs(), acks="all")
        await producer.start()
        try:
            for spec in specs:
                await producer.send_and_wait(
                    REGISTRY_TOPIC,
                    key=spec.name.encode(),
                    value=msgpack.packb(
                        {
                            "key_field": spec.key_field,
                            "event_type": spec.event_type,
                            "schema_version": spec.schema_version,
                            "applied_at_ms": int(time.time() * 1000),
                        }
                    ),
                )
        finally:
            await producer.stop()


async def ensure_topics(settings: PipelineSettings, specs: list[TopicSpec]) -> TopicPlan:
    """Plan and apply in one go (tests, benchmarks, demos); raises on plan errors."""
    async with TopicAdmin(settings) as admin:
        brokers = await admin.broker_count()
        observed = await admin.observe([spec.name for spec in specs])
        plan = plan_topics(specs, observed, await admin.recorded_keys(), brokers)
        await admin.apply(plan, brokers)
        return plan


async def max_message_bytes(settings: PipelineSettings, names: list[str]) -> dict[str, int]:
    """Each existing topic's max.message.bytes as the cluster applies it (broker default included).

    A worker sizes its outputs and dead letters by these; topics that are
    missing are left out, and the caller falls back to the broker default.
    """
    async with TopicAdmin(settings) as admin:
        existing = list(await admin.partitions(names))
        configs = await admin.configs(existing)
    limits = {}
    for name, values in configs.items():
        raw = values.get("max.message.bytes")
        if raw and raw.isdigit():
            limits[name] = int(raw)
    return limits
