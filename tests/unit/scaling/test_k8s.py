"""The rendered Kubernetes and KEDA manifests: parseable, complete, consistent."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import yaml

from consumers import PROCESSORS
from pipeline.errors import ConfigError
from pipeline.scaling.k8s import LEAVE_GROUP_MARGIN_S, RenderOptions, lag_threshold, render
from pipeline.scaling.policy import ScalingPolicy
from pipeline.settings import PipelineSettings

SETTINGS = PipelineSettings(bootstrap_servers="kafka-0.kafka:9092,kafka-1.kafka:9092")
POLICY = ScalingPolicy(
    min_replicas=2,
    max_replicas=20,
    target_drain_s=45,
    scale_down_window_s=90,
    caught_up_window_s=12,
)


def manifests(scale_on: str) -> list[dict[str, Any]]:
    rendered = render(
        PROCESSORS["enrich_orders"],
        SETTINGS,
        POLICY,
        RenderOptions(image="registry.example/pipeline:1.0", scale_on=scale_on, replica_rate=400),
    )
    docs = [doc for text in rendered.values() for doc in yaml.safe_load_all(text) if doc]
    assert "${" not in "".join(rendered.values()), "a placeholder was left unfilled"
    return docs


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


@pytest.mark.parametrize("scale_on", ["kafka", "prometheus"])
def test_every_manifest_has_its_required_fields(scale_on: str) -> None:
    for doc in manifests(scale_on):
        assert doc["apiVersion"] and doc["kind"]
        assert doc["metadata"]["name"] and doc["metadata"]["namespace"] == "default"
        assert doc["spec"]


@pytest.mark.parametrize("scale_on", ["kafka", "prometheus"])
def test_selectors_match_their_pod_labels_and_scale_targets_exist(scale_on: str) -> None:
    docs = manifests(scale_on)
    deployments = {doc["metadata"]["name"]: doc for doc in of_kind(docs, "Deployment")}
    for deployment in deployments.values():
        selector = deployment["spec"]["selector"]["matchLabels"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items()
    for scaled in of_kind(docs, "ScaledObject"):
        target = deployments[scaled["spec"]["scaleTargetRef"]["name"]]
        assert "replicas" not in target["spec"], "the HPA owns the replica count"
    for service in of_kind(docs, "Service"):
        selected = [
            d
            for d in deployments.values()
            if service["spec"]["selector"].items()
            <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(selected) == 1


def test_workers_use_static_membership_probes_and_a_long_enough_grace_period() -> None:
    worker = of_kind(manifests("kafka"), "Deployment")[0]["spec"]["template"]["spec"]
    container = worker["containers"][0]
    command = container["command"]
    assert command[:3] == ["pipeline", "worker", "enrich_orders"]
    assert command[command.index("--replica-id") + 1] == "$(POD_NAME)"
    assert "--static-membership" in command
    drain = float(command[command.index("--drain-deadline") + 1])
    assert worker["terminationGracePeriodSeconds"] >= drain + LEAVE_GROUP_MARGIN_S
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert command[command.index("--health-host") + 1] == "0.0.0.0"
    env = {item["name"]: item for item in container["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["PIPELINE_BOOTSTRAP_SERVERS"]["value"] == SETTINGS.bootstrap_servers


def test_the_kafka_scaler_is_derived_from_the_policy() -> None:
    scaled = of_kind(manifests("kafka"), "ScaledObject")[0]["spec"]
    trigger = scaled["triggers"][0]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    assert meta["consumerGroup"] == "enrich_orders" and meta["topic"] == "orders"
    assert int(meta["lagThreshold"]) == lag_threshold(POLICY, 400) == 400 * 45
    assert scaled["minReplicaCount"] == 2
    assert scaled["maxReplicaCount"] == 12, "capped at the topic's partitions"
    behavior = scaled["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 90


def test_the_prometheus_alternative_follows_our_desired_replicas() -> None:
    docs = manifests("prometheus")
    trigger = of_kind(docs, "ScaledObject")[0]["spec"]["triggers"][0]
    assert trigger["type"] == "prometheus"
    assert 'pipeline_desired_replicas{group="enrich_orders"}' in trigger["metadata"]["query"]
    assert trigger["metadata"]["threshold"] == "1"
    autoscaler = [d for d in of_kind(docs, "Deployment") if "autoscaler" in d["metadata"]["name"]]
    command = autoscaler[0]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:3] == ["pipeline", "scale", "enrich_orders"] and "--recommend-only" in command
    # The policy's windows reach the process that applies them.
    assert command[command.index("--scale-down-window") + 1] == "90s"
    assert command[command.index("--caught-up-window") + 1] == "12s"


def test_a_queue_processor_scales_past_its_partitions_on_our_policy_and_the_confluent_client() -> (
    None
):
    queue = dataclasses.replace(PROCESSORS["enrich_orders"], delivery="queue", lanes=1)
    options = RenderOptions(image="registry.example/pipeline:1.0", scale_on="kafka")
    with pytest.raises(ConfigError, match="--scale-on prometheus"):
        render(queue, SETTINGS, POLICY, options)
    rendered = render(queue, SETTINGS, POLICY, dataclasses.replace(options, scale_on="prometheus"))
    docs = [doc for text in rendered.values() for doc in yaml.safe_load_all(text) if doc]
    assert of_kind(docs, "ScaledObject")[0]["spec"]["maxReplicaCount"] == POLICY.max_replicas
    assert POLICY.max_replicas > queue.source.partitions
    worker = [d for d in of_kind(docs, "Deployment") if "autoscaler" not in d["metadata"]["name"]]
    env = {
        e["name"]: e.get("value")
        for e in worker[0]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["PIPELINE_CLIENT"] == "confluent"
