import dataclasses

from pipeline.ops.topic_plan import ObservedTopic, plan_topics
from tests.unit.models import SAMPLE_SPEC

SPEC = dataclasses.replace(SAMPLE_SPEC, partitions=6, replication_factor=3, min_insync_replicas=2)


def observed(partitions: int = 6, replication: int = 3, **configs: str) -> dict[str, ObservedTopic]:
    base = {
        "cleanup.policy": "delete",
        "retention.ms": str(SPEC.retention_ms),
        "min.insync.replicas": "2",
    }
    base.update({key.replace("_", "."): value for key, value in configs.items()})
    return {SPEC.name: ObservedTopic(SPEC.name, partitions, replication, base)}


def test_missing_topic_is_created_with_managed_configs() -> None:
    plan = plan_topics([SPEC], {}, {}, broker_count=3)
    (change,) = plan.changes
    assert change.action == "create"
    assert change.partitions == 6
    assert change.replication_factor == 3
    assert change.configs == {
        "cleanup.policy": "delete",
        "min.insync.replicas": "2",
        "retention.ms": str(SPEC.retention_ms),
    }
    assert not plan.errors and not plan.warnings


def test_replication_is_clamped_to_the_cluster_with_a_warning() -> None:
    plan = plan_topics([SPEC], {}, {}, broker_count=1)
    (change,) = plan.changes
    assert change.replication_factor == 1
    assert change.configs["min.insync.replicas"] == "1"
    assert any("clamped to 1" in warning for warning in plan.warnings)


def test_matching_topic_is_unchanged() -> None:
    plan = plan_topics([SPEC], observed(), {SPEC.name: SPEC.key_field}, broker_count=3)
    assert [change.action for change in plan.changes] == ["unchanged"]
    assert plan.pending == []


def test_more_partitions_and_new_retention_are_an_update() -> None:
    spec = dataclasses.replace(SPEC, partitions=12, retention_ms=1000)
    plan = plan_topics([spec], observed(), {}, broker_count=3)
    (change,) = plan.changes
    assert change.action == "update"
    assert change.new_partitions == 12
    assert change.config_changes == {"retention.ms": (str(SPEC.retention_ms), "1000")}
    assert "partitions 6 → 12" in change.describe()


def test_fewer_partitions_is_an_error_that_says_what_to_do() -> None:
    plan = plan_topics([SPEC], observed(partitions=12), {}, broker_count=3)
    assert plan.changes == []
    (error,) = plan.errors
    assert "has 12 partitions on the cluster and 6 in the catalogue" in error
    assert "Kafka cannot remove partitions" in error
    assert "samples.v2" in error


def test_changed_key_is_an_error() -> None:
    plan = plan_topics([SPEC], observed(), {SPEC.name: "other_field"}, broker_count=3)
    (error,) = plan.errors
    assert "applied keyed by 'other_field'" in error
    assert "now keys it by 'entity_id'" in error


def test_dlq_spec_keeps_key_and_partitions_and_never_compacts() -> None:
    compacted = dataclasses.replace(SPEC, cleanup_policy="compact", retention_ms=None)
    dlq = compacted.dlq_spec()
    assert dlq.name == "samples.dlq"
    assert dlq.partitions == compacted.partitions
    assert dlq.key_field == compacted.key_field
    assert dlq.cleanup_policy == "delete"
    assert dlq.is_dlq and not dlq.dlq
