"""The catalogue's topics on a cluster: what is there, the key each was applied with, apply.

Besides Kafka's own topic state we keep one compacted topic,
`_pipeline.catalogue`, holding the key field each topic was applied with
(Kafka has no place for it, and `topics apply` must refuse to re-key a
topic) and its event schemas by version (pipeline.ops.schema_registry).
With a topic prefix the registry carries it too (`app._pipeline.catalogue`):
an application whose ACLs allow only its prefix can keep its own, and keys
recorded before in the unprefixed one are still read where it may see it.
"""

from __future__ import annotations

import time
from typing import Any

import msgpack
from pydantic import BaseModel

from pipeline.catalogue import TopicSpec
from pipeline.errors import PipelineError
from pipeline.kafka.port import (
    Admin,
    Clients,
    ConsumerOptions,
    NewTopic,
    PartitionInfo,
    ProducerOptions,
    TopicPartition,
)
from pipeline.ops.schema_registry import (
    check_schemas,
    parse_version_key,
    registered_schemas,
    registry_entries,
)
from pipeline.ops.topic_plan import ObservedTopic, TopicPlan, plan_topics

REGISTRY_TOPIC = "_pipeline.catalogue"
MANAGED_CONFIGS = ("cleanup.policy", "retention.ms", "min.insync.replicas", "max.message.bytes")
REGISTRY_READ_TIMEOUT_S = 30.0


def _check(answers: dict[str, str | None], what: str) -> None:
    refused = {topic: why for topic, why in answers.items() if why}
    if refused:
        listed = "; ".join(f"{topic!r}: {why}" for topic, why in refused.items())
        raise PipelineError(f"{what} failed: {listed}")


class TopicsOnCluster:
    """An admin connection with the handful of questions `topics` commands ask."""

    def __init__(self, clients: Clients, prefix: str = "") -> None:
        self.clients = clients
        self.admin: Admin = clients.admin()
        self.registry = prefix + REGISTRY_TOPIC

    async def __aenter__(self) -> TopicsOnCluster:
        await self.admin.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.admin.stop()

    async def broker_count(self) -> int:
        return await self.admin.broker_count()

    async def partitions(self, names: list[str]) -> dict[str, list[PartitionInfo]]:
        """Partition layout of the topics that exist; missing ones are left out."""
        return await self.admin.describe_topics(names)

    async def configs(self, names: list[str]) -> dict[str, dict[str, str]]:
        return await self.admin.topic_configs(names)

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
        return keys_of(await self.recorded())

    async def recorded(self) -> dict[str, dict[str, Any]]:
        """Every registry entry by its key: topics, and `<topic>#v<n>` schema versions."""
        entries: dict[str, dict[str, Any]] = {}
        for registry in dict.fromkeys([REGISTRY_TOPIC, self.registry]):
            entries |= await self._read_registry(registry)
        return entries

    async def _read_registry(self, registry: str) -> dict[str, dict[str, Any]]:
        if not await self.partitions([registry]):
            return {}
        consumer = self.clients.consumer(ConsumerOptions())
        await consumer.start()
        try:
            partition = TopicPartition(registry, 0)
            consumer.assign([partition])
            await consumer.seek_to_beginning(partition)
            end = (await consumer.end_offsets([partition]))[partition]
            entries: dict[str, dict[str, Any]] = {}
            deadline = time.monotonic() + REGISTRY_READ_TIMEOUT_S
            while await consumer.position(partition) < end:
                if time.monotonic() > deadline:
                    raise PipelineError(
                        f"reading {registry!r} did not reach offset {end} "
                        f"within {REGISTRY_READ_TIMEOUT_S:.0f} s"
                    )
                batches = await consumer.fetch([partition], 1.0, 10_000)
                for record in batches.get(partition, []):
                    name = (record.key or b"").decode(errors="replace")
                    if record.value is None:
                        entries.pop(name, None)
                    else:
                        entries[name] = msgpack.unpackb(record.value)
            return entries
        finally:
            await consumer.stop()

    async def apply(self, plan: TopicPlan, broker_count: int) -> None:
        """Carry out a plan without errors; the registry records every spec's key."""
        if plan.errors:
            raise PipelineError("refusing to apply a plan with errors:\n" + "\n".join(plan.errors))
        await self._ensure_registry(broker_count)
        creates = [change for change in plan.changes if change.action == "create"]
        if creates:
            answers = await self.admin.create_topics(
                [
                    NewTopic(c.topic, c.partitions, c.replication_factor, dict(c.configs))
                    for c in creates
                ]
            )
            _check(answers, "creating topics")
        await self.admin.create_partitions(
            {c.topic: c.new_partitions for c in plan.changes if c.new_partitions is not None}
        )
        reconfigure = {
            change.topic: {key: after for key, (_, after) in change.config_changes.items()}
            for change in plan.changes
            if change.config_changes
        }
        # Incremental: only the configs that change; an operator's others stay.
        _check(await self.admin.set_topic_configs(reconfigure), "updating topic configs")
        await self._record_keys([change.spec for change in plan.changes])

    async def _ensure_registry(self, broker_count: int) -> None:
        if await self.partitions([self.registry]):
            return
        replication = min(3, broker_count)
        configs = {"cleanup.policy": "compact", "min.insync.replicas": str(min(2, replication))}
        answers = await self.admin.create_topics([NewTopic(self.registry, 1, replication, configs)])
        _check(answers, f"creating {self.registry!r}")

    async def _record_keys(self, specs: list[TopicSpec[BaseModel]]) -> None:
        producer = self.clients.producer(ProducerOptions())
        await producer.start()
        try:
            batch = producer.create_batch()
            acks = []
            now_ms = int(time.time() * 1000)
            for spec in specs:
                for key, entry in registry_entries(spec, now_ms).items():
                    if not batch.append(key.encode(), msgpack.packb(entry), None, []):
                        acks.append(await producer.send_batch(batch, self.registry, 0))
                        batch = producer.create_batch()
                        if not batch.append(key.encode(), msgpack.packb(entry), None, []):
                            raise PipelineError(
                                f"the registry entry {key!r} does not fit in one record "
                                f"of {self.registry!r}; its event model's JSON Schema is too big"
                            )
            acks.append(await producer.send_batch(batch, self.registry, 0))
            for ack in acks:
                await ack
        finally:
            await producer.stop()


def keys_of(entries: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Topic → the key field it was applied with (schema version entries left out)."""
    return {
        name: str(entry["key_field"])
        for name, entry in entries.items()
        if parse_version_key(name) is None and "key_field" in entry
    }


async def plan_with_schemas(
    topics: TopicsOnCluster, specs: list[TopicSpec[BaseModel]], allow_incompatible: bool = False
) -> tuple[TopicPlan, int]:
    """The topic plan with the schema check's errors, warnings and changes folded in."""
    brokers = await topics.broker_count()
    observed = await topics.observe([spec.name for spec in specs])
    entries = await topics.recorded()
    plan = plan_topics(specs, observed, keys_of(entries), brokers)
    schemas = check_schemas(specs, registered_schemas(entries), allow_incompatible)
    plan.errors += schemas.errors
    plan.warnings += schemas.warnings
    plan.schema_changes = schemas.changes
    return plan, brokers


async def ensure_topics(
    clients: Clients, specs: list[TopicSpec[BaseModel]], prefix: str = ""
) -> TopicPlan:
    """Plan and apply in one go (tests, benchmarks, demos); raises on plan errors."""
    async with TopicsOnCluster(clients, prefix) as topics:
        plan, brokers = await plan_with_schemas(topics, specs)
        await topics.apply(plan, brokers)
        return plan


async def max_message_bytes(clients: Clients, names: list[str]) -> dict[str, int]:
    """Each existing topic's max.message.bytes as the cluster applies it (broker default included).

    A worker sizes its outputs and dead letters by these; topics that are
    missing are left out, and the caller falls back to the broker default.
    """
    async with TopicsOnCluster(clients) as topics:
        existing = list(await topics.partitions(names))
        configs = await topics.configs(existing)
    limits = {}
    for name, values in configs.items():
        raw = values.get("max.message.bytes")
        if raw and raw.isdigit():
            limits[name] = int(raw)
    return limits
