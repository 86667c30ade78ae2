"""Access control lists, granted with an administrator's settings (confluent-kafka's admin).

What `pipeline infra up --security` gives the application principal: every
operation on the resources named with its prefix (topics and so their
DLQs, consumer groups, transactional ids), its replay and DLQ-redrive
groups, and the idempotent-write right on the cluster; nothing else.
"""

from __future__ import annotations

from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from pipeline.errors import PipelineError
from pipeline.kafka.confluent.config import client_config
from pipeline.settings import PipelineSettings

REQUEST_TIMEOUT_S = 15.0


def application_bindings(principal: str, prefix: str) -> list[AclBinding]:
    def prefixed(kind: ResourceType, name: str) -> AclBinding:
        return AclBinding(
            kind,
            name,
            ResourcePatternType.PREFIXED,
            principal,
            "*",
            AclOperation.ALL,
            AclPermissionType.ALLOW,
        )

    return [
        prefixed(ResourceType.TOPIC, prefix),
        prefixed(ResourceType.GROUP, prefix),
        prefixed(ResourceType.TRANSACTIONAL_ID, prefix),
        # Replays and redrives run in groups named after what they replay or redrive.
        prefixed(ResourceType.GROUP, "replay."),
        prefixed(ResourceType.GROUP, f"dlq-redrive.{prefix}"),
        AclBinding(
            ResourceType.BROKER,
            "kafka-cluster",
            ResourcePatternType.LITERAL,
            principal,
            "*",
            AclOperation.IDEMPOTENT_WRITE,
            AclPermissionType.ALLOW,
        ),
    ]


def grant(admin_settings: PipelineSettings, bindings: list[AclBinding]) -> None:
    client = AdminClient(client_config(admin_settings))
    futures = client.create_acls(bindings, request_timeout=REQUEST_TIMEOUT_S)
    for binding, future in futures.items():
        try:
            future.result()
        except Exception as exc:
            raise PipelineError(f"creating the ACL {binding} failed: {exc}") from exc
