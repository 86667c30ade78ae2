"""Kubernetes manifests for a processor, filled in from its settings and our scaling policy.

The templates are package data in k8s_templates/ (their README maps our
policy onto KEDA). KEDA's Kafka scaler only knows lag, so
the policy is mapped onto its settings:
- lagThreshold = per-replica rate × target drain time: the backlog one
  replica clears within the target (KEDA asks for ceil(lag / threshold));
- min/maxReplicaCount = the policy's bounds, max capped at the partitions
  (not for a queue-mode processor: its share group takes any number);
- the HPA behaviour scales up at once and down to the highest
  recommendation of the policy's scale-down window;
- pollingInterval = the policy's decision interval.
The alternative scales on the desired replicas our policy exports
(`pipeline scale --recommend-only`) through KEDA's Prometheus scaler.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

import yaml

from pipeline.errors import ConfigError
from pipeline.processor import Processor
from pipeline.scaling.k8s_security import secure_documents, secured
from pipeline.scaling.policy import ScalingPolicy
from pipeline.settings import PipelineSettings

TEMPLATES = Path(__file__).parent / "k8s_templates"
LEAVE_GROUP_MARGIN_S = 30
"""Grace period beyond the drain deadline: commit, leave the group, flush the producer."""


@dataclass(frozen=True)
class RenderOptions:
    image: str
    namespace: str = "default"
    scale_on: str = "kafka"
    """`kafka` (KEDA's Kafka scaler) or `prometheus` (our policy's desired replicas)."""
    replica_rate: float = 200.0
    prometheus_url: str = "http://prometheus.monitoring:9090"
    health_port: int = 8081
    drain_deadline_s: float = 20.0
    interval_s: int = 5
    gateway: bool = False
    """Also the HTTP gateway's Deployment and Service."""
    cpu_request: str = "500m"
    memory_request: str = "256Mi"
    memory_limit: str = "512Mi"
    cache_size: str = "1Gi"
    """The table caches' emptyDir (and, with 256Mi for the rest, the pod's ephemeral storage)."""


def lag_threshold(policy: ScalingPolicy, replica_rate: float) -> int:
    return max(1, math.ceil(replica_rate * policy.target_drain_s))


def render(
    processor: Processor[Any],
    settings: PipelineSettings,
    policy: ScalingPolicy,
    options: RenderOptions,
) -> dict[str, str]:
    """File name → manifest text."""
    if options.scale_on not in ("kafka", "prometheus"):
        raise ConfigError(f"--scale-on must be kafka or prometheus, not {options.scale_on!r}")
    queue = processor.delivery == "queue"
    if queue and options.scale_on == "kafka":
        raise ConfigError(
            f"processor {processor.name!r} is queue-mode: KEDA's Kafka scaler reads a consumer "
            "group's lag, and its share group has none; use --scale-on prometheus (our "
            "autoscaler reads the share group's backlog)"
        )
    ceiling = (
        policy.max_replicas if queue else min(policy.max_replicas, processor.source.partitions)
    )
    name = re.sub(r"[^a-z0-9-]", "-", processor.name.lower()).strip("-")
    values = {
        "name": name,
        "namespace": options.namespace,
        "processor": processor.name,
        "image": options.image,
        "group": processor.group_id,
        "topic": processor.source.name,
        "bootstrap_servers": settings.bootstrap_servers,
        "topic_prefix": settings.topic_prefix,
        "health_port": str(options.health_port),
        "drain_deadline_s": f"{options.drain_deadline_s:g}",
        "grace_period_s": str(math.ceil(options.drain_deadline_s) + LEAVE_GROUP_MARGIN_S),
        "min_replicas": str(policy.min_replicas),
        "max_replicas": str(ceiling),
        "client": "confluent" if queue else settings.client,
        "interval_s": str(options.interval_s),
        "scale_down_window_s": f"{policy.scale_down_window_s:.0f}",
        "caught_up_window_s": f"{policy.caught_up_window_s:.0f}",
        "target_drain_s": f"{policy.target_drain_s:.0f}",
        "lag_threshold": str(lag_threshold(policy, options.replica_rate)),
        "prometheus_url": options.prometheus_url,
        "cpu_request": options.cpu_request,
        "memory_request": options.memory_request,
        "memory_limit": options.memory_limit,
        "cache_size": options.cache_size,
        "ephemeral_limit": _plus_256mi(options.cache_size),
    }
    files = ["worker-deployment.yaml", "worker-pdb.yaml"]
    if options.scale_on == "kafka":
        files.append("keda-kafka-scaledobject.yaml")
        if secured(settings):
            files.append("keda-trigger-auth.yaml")
    else:
        files += ["keda-prometheus-scaledobject.yaml", "autoscaler-deployment.yaml"]
    if options.gateway:
        files += ["gateway-deployment.yaml", "gateway-service.yaml"]
    folder = TEMPLATES
    rendered = {}
    for file_name in files:
        template = Template((folder / file_name).read_text())
        try:
            rendered[file_name] = template.substitute(values)
        except KeyError as missing:
            raise ConfigError(
                f"{folder / file_name} uses ${{{missing.args[0]}}}, unknown"
            ) from None
    if secured(settings):
        for file_name, text in rendered.items():
            rendered[file_name] = _with_credentials(text, settings)
    return rendered


def _with_credentials(text: str, settings: PipelineSettings) -> str:
    """The manifest with SASL/TLS added (pipeline.scaling.k8s_security), its header kept."""
    header = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))
    docs = [doc for doc in yaml.safe_load_all(text) if doc]
    secure_documents(docs, settings)
    return header + yaml.safe_dump_all(docs, sort_keys=False)


def _plus_256mi(size: str) -> str:
    """The pod's ephemeral storage: the cache's share plus room for /tmp and logs."""
    found = re.fullmatch(r"(\d+)(Mi|Gi)", size)
    if found is None:
        raise ConfigError(f"cache size {size!r}: give it in Mi or Gi, e.g. 1Gi")
    mebibytes = int(found.group(1)) * (1024 if found.group(2) == "Gi" else 1)
    return f"{mebibytes + 256}Mi"


def write(rendered: dict[str, str], out: Path) -> list[Path]:
    """The manifests as a Kustomize base: `kubectl apply -k DIR`, or an overlay's `resources`."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, text in rendered.items():
        path = out / file_name
        path.write_text(text)
        written.append(path)
    kustomization = out / "kustomization.yaml"
    kustomization.write_text(
        "# Written by `pipeline k8s render`: patch these in an overlay, not here.\n"
        + yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": sorted(rendered),
            },
            sort_keys=False,
        )
    )
    written.append(kustomization)
    return written
