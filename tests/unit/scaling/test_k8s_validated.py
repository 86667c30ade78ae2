"""Every rendered manifest against the Kubernetes schemas (offline, kubernetes-validate),
KEDA's objects against the fields KEDA documents, and credentials only ever from Secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from consumers import PROCESSORS
from pipeline.scaling.k8s import RenderOptions, render, write
from pipeline.scaling.policy import ScalingPolicy
from pipeline.settings import PipelineSettings

KUBERNETES = "1.30"
PASSWORD = "s3cret-never-in-yaml"

# From KEDA's documentation (ScaledObject spec, TriggerAuthentication, the Kafka scaler).
SCALED_OBJECT_SPEC = {
    "scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod",
    "idleReplicaCount", "minReplicaCount", "maxReplicaCount", "fallback", "advanced", "triggers",
}  # fmt: skip
TRIGGER = {"type", "name", "metadata", "authenticationRef", "metricType", "useCachedMetrics"}
KAFKA_METADATA = {
    "bootstrapServers", "consumerGroup", "topic", "lagThreshold", "activationLagThreshold",
    "offsetResetPolicy", "allowIdleConsumers", "scaleToZeroOnInvalidOffset",
    "excludePersistentLag", "limitToPartitionsWithLag", "version", "partitionLimitation",
    "sasl", "tls", "unsafeSsl",
}  # fmt: skip
PROMETHEUS_METADATA = {
    "serverAddress", "query", "threshold", "activationThreshold", "namespace",
    "customHeaders", "ignoreNullValues", "unsafeSsl", "queryParameters",
}  # fmt: skip
KAFKA_AUTH_PARAMETERS = {"sasl", "username", "password", "tls", "ca", "cert", "key", "keyPassword"}
TRIGGER_AUTH_SPEC = {"secretTargetRef", "env", "hashiCorpVault", "podIdentity", "azureKeyVault"}


def rendered(scale_on: str, protocol: str) -> list[dict[str, Any]]:
    settings = PipelineSettings(
        bootstrap_servers="kafka-0.kafka:9093",
        security_protocol=protocol,  # type: ignore[arg-type]
        sasl_mechanism="SCRAM-SHA-512" if protocol.startswith("SASL") else None,
        sasl_username="app" if protocol.startswith("SASL") else None,
        sasl_password=PASSWORD if protocol.startswith("SASL") else None,  # type: ignore[arg-type]
    )
    files = render(
        PROCESSORS["enrich_orders"],
        settings,
        ScalingPolicy(min_replicas=1, max_replicas=8),
        RenderOptions(image="registry.example/pipeline:0.1.0", scale_on=scale_on, gateway=True),
    )
    text = "".join(files.values())
    assert PASSWORD not in text and "${" not in text
    return [doc for body in files.values() for doc in yaml.safe_load_all(body) if doc]


CASES = [
    (scale_on, protocol)
    for scale_on in ("kafka", "prometheus")
    for protocol in ("PLAINTEXT", "SASL_SSL", "SASL_PLAINTEXT", "SSL")
]


@pytest.mark.parametrize(("scale_on", "protocol"), CASES)
def test_every_kubernetes_object_passes_the_schema(scale_on: str, protocol: str) -> None:
    checked = 0
    for doc in rendered(scale_on, protocol):
        if doc["apiVersion"].startswith("keda.sh/"):
            continue
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)
        checked += 1
    assert checked >= 4  # worker, its disruption budget, the gateway and its service


@pytest.mark.parametrize(("scale_on", "protocol"), CASES)
def test_keda_objects_use_only_the_fields_keda_documents(scale_on: str, protocol: str) -> None:
    docs = rendered(scale_on, protocol)
    auths = {d["metadata"]["name"]: d for d in docs if d["kind"] == "TriggerAuthentication"}
    for scaled in (d for d in docs if d["kind"] == "ScaledObject"):
        assert set(scaled["spec"]) <= SCALED_OBJECT_SPEC
        for trigger in scaled["spec"]["triggers"]:
            assert set(trigger) <= TRIGGER
            known = KAFKA_METADATA if trigger["type"] == "kafka" else PROMETHEUS_METADATA
            assert set(trigger["metadata"]) <= known
            if trigger["type"] == "kafka" and protocol != "PLAINTEXT":
                auth = auths[trigger["authenticationRef"]["name"]]
                assert set(auth["spec"]) <= TRIGGER_AUTH_SPEC
                parameters = {ref["parameter"] for ref in auth["spec"]["secretTargetRef"]}
                assert parameters <= KAFKA_AUTH_PARAMETERS
                assert ("sasl" in parameters) == protocol.startswith("SASL")
                assert ("ca" in parameters) == protocol.endswith("SSL")
    if scale_on == "prometheus" or protocol == "PLAINTEXT":
        assert not auths


def test_pods_run_unprivileged_on_a_read_only_root_with_a_writable_cache() -> None:
    for doc in rendered("kafka", "SASL_SSL"):
        if doc["kind"] != "Deployment":
            continue
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            env = {e["name"]: e for e in container["env"]}
            assert env["PIPELINE_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
            password = env["PIPELINE_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
            assert password["key"] == "password"
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert "/etc/pipeline/kafka-tls" in mounts and "/tmp" in mounts
        if doc["metadata"]["name"] != "gateway":
            (cache,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "cache"]
            assert cache["mountPath"] == "/var/cache/pipeline"
            assert any(v["name"] == "cache" and "emptyDir" in v for v in pod["volumes"])


def test_written_manifests_are_a_kustomize_base_of_every_file(tmp_path: Path) -> None:
    files = render(
        PROCESSORS["enrich_orders"],
        PipelineSettings(bootstrap_servers="kafka:9092"),
        ScalingPolicy(),
        RenderOptions(image="registry.example/pipeline:0.1.0", gateway=True),
    )
    written = write(files, tmp_path)
    kustomization = yaml.safe_load((tmp_path / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted(p.name for p in written[:-1])
    assert all((tmp_path / name).is_file() for name in kustomization["resources"])
