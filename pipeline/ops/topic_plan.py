"""What `topics apply` would change: a pure diff of catalogue against cluster.

Kept free of I/O so every rule (never shrink partitions, never re-key a
topic, clamp replication to the cluster) is unit-tested without a broker,
and `--dry-run` prints exactly what `apply` then does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel

from pipeline.catalogue import TopicSpec

Action = Literal["create", "update", "unchanged"]


@dataclass(frozen=True)
class ObservedTopic:
    """A topic as the cluster has it (only the configs the catalogue manages)."""

    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str]


@dataclass
class TopicChange:
    spec: TopicSpec[BaseModel]
    action: Action
    replication_factor: int
    partitions: int
    new_partitions: int | None = None
    configs: dict[str, str] = field(default_factory=dict)
    config_changes: dict[str, tuple[str | None, str]] = field(default_factory=dict)

    @property
    def topic(self) -> str:
        return self.spec.name

    def describe(self) -> str:
        if self.action == "create":
            return (
                f"create: {self.partitions} partitions, RF {self.replication_factor}, "
                + ", ".join(f"{key}={value}" for key, value in sorted(self.configs.items()))
            )
        if self.action == "unchanged":
            return "unchanged"
        parts = []
        if self.new_partitions is not None:
            parts.append(f"partitions {self.partitions} → {self.new_partitions}")
        for key, (before, after) in sorted(self.config_changes.items()):
            parts.append(f"{key} {before} → {after}")
        return "; ".join(parts)


@dataclass
class TopicPlan:
    changes: list[TopicChange] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    schema_changes: dict[str, str] = field(default_factory=dict)
    """Topic → the schema version applying registers (pipeline.ops.schema_registry)."""

    @property
    def pending(self) -> list[TopicChange]:
        """Topics whose layout, configs or registered schema change."""
        return [
            change
            for change in self.changes
            if change.action != "unchanged" or change.topic in self.schema_changes
        ]


def plan_topics(
    specs: list[TopicSpec[BaseModel]],
    observed: dict[str, ObservedTopic],
    recorded_keys: dict[str, str],
    broker_count: int,
) -> TopicPlan:
    """Changes that bring the cluster to `specs`, and what cannot be done.

    `recorded_keys` maps topic name to the key field it was applied with
    (kept on the cluster by `topics apply`), so a re-keyed declaration is
    caught before any producer writes with the new key.
    """
    plan = TopicPlan()
    for spec in specs:
        replication = spec.replication_factor
        if replication > broker_count:
            plan.warnings.append(
                f"topic {spec.name!r}: replication factor {replication} clamped to "
                f"{broker_count}, the number of brokers in this cluster"
            )
            replication = broker_count
        desired_configs = spec.topic_configs(replication)
        if int(desired_configs["min.insync.replicas"]) < spec.min_insync_replicas:
            plan.warnings.append(
                f"topic {spec.name!r}: min.insync.replicas {spec.min_insync_replicas} "
                f"lowered to {desired_configs['min.insync.replicas']} to fit RF {replication}"
            )
        current = observed.get(spec.name)
        if current is None:
            plan.changes.append(
                TopicChange(
                    spec=spec,
                    action="create",
                    replication_factor=replication,
                    partitions=spec.partitions,
                    configs=desired_configs,
                )
            )
            continue
        recorded = recorded_keys.get(spec.name)
        if recorded is not None and recorded != spec.key_field:
            plan.errors.append(
                f"topic {spec.name!r} was applied keyed by {recorded!r} and the catalogue "
                f"now keys it by {spec.key_field!r}. Re-keying an existing topic breaks "
                "per-key order (old and new events of one entity land on different "
                f"partitions). Keep key_field={recorded!r}, or declare a new topic "
                f"(e.g. {spec.name}.v2) keyed by {spec.key_field!r} and backfill it with "
                "`pipeline replay --into-topic`."
            )
            continue
        if spec.partitions < current.partitions:
            plan.errors.append(
                f"topic {spec.name!r} has {current.partitions} partitions on the cluster and "
                f"{spec.partitions} in the catalogue. Kafka cannot remove partitions. Set "
                f"partitions={current.partitions} in the catalogue, or declare a new topic "
                f"(e.g. {spec.name}.v2) with {spec.partitions} partitions and move the data "
                "with `pipeline replay --into-topic`."
            )
            continue
        if current.replication_factor != replication:
            plan.warnings.append(
                f"topic {spec.name!r} has replication factor {current.replication_factor} on "
                f"the cluster and {replication} in the catalogue; `topics apply` does not "
                "reassign replicas (use kafka-reassign-partitions)"
            )
        change = TopicChange(
            spec=spec,
            action="unchanged",
            replication_factor=current.replication_factor,
            partitions=current.partitions,
            configs=desired_configs,
        )
        if spec.partitions > current.partitions:
            change.new_partitions = spec.partitions
            plan.warnings.append(
                f"topic {spec.name!r}: adding partitions moves keys to new partitions; "
                "events of one key published before and after may be read out of order"
            )
        for key, value in desired_configs.items():
            before = current.configs.get(key)
            if before != value:
                change.config_changes[key] = (before, value)
        if change.new_partitions is not None or change.config_changes:
            change.action = "update"
        plan.changes.append(change)
    return plan
