"""Kafka's IncrementalAlterConfigs request (KIP-339), which aiokafka does not offer.

The older AlterConfigs request replaces a topic's whole set of dynamic
configs: `topics apply` sending only the configs it manages would reset an
operator's `segment.ms` or `max.message.bytes` to the broker default.
IncrementalAlterConfigs sets the named configs and leaves the rest alone.
Version 0 is enough (every broker since Kafka 2.3 answers it).
"""

from __future__ import annotations

from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Array, Boolean, Int8, Int16, Int32, Schema, String

API_KEY = 44
RESOURCE_TOPIC = 2
RESOURCE_GROUP = 32
OPERATION_SET = 0


class IncrementalAlterConfigsResponse_v0(Response):  # type: ignore[misc]
    API_KEY = API_KEY
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "responses",
            Array(
                ("error_code", Int16),
                ("error_message", String("utf-8")),
                ("resource_type", Int8),
                ("resource_name", String("utf-8")),
            ),
        ),
    )


class IncrementalAlterConfigsRequest_v0(RequestStruct):  # type: ignore[misc]
    API_KEY = API_KEY
    API_VERSION = 0
    RESPONSE_TYPE = IncrementalAlterConfigsResponse_v0
    SCHEMA = Schema(
        (
            "resources",
            Array(
                ("resource_type", Int8),
                ("resource_name", String("utf-8")),
                (
                    "configs",
                    Array(
                        ("name", String("utf-8")),
                        ("config_operation", Int8),
                        ("value", String("utf-8")),
                    ),
                ),
            ),
        ),
        ("validate_only", Boolean),
    )


class IncrementalAlterConfigsRequest(Request[IncrementalAlterConfigsRequest_v0]):  # type: ignore[misc]
    API_KEY = API_KEY

    def __init__(self, resources: list[Any], validate_only: bool = False) -> None:
        self._resources = resources
        self._validate_only = validate_only

    def build(
        self, request_struct_class: type[IncrementalAlterConfigsRequest_v0]
    ) -> IncrementalAlterConfigsRequest_v0:
        return request_struct_class(self._resources, self._validate_only)


async def set_topic_configs(
    admin: AIOKafkaAdminClient, configs: dict[str, dict[str, str]]
) -> list[tuple[str, int, str | None]]:
    """Set these configs per topic, leaving every other one as it is.

    Returns (topic, error code, error message) per topic; code 0 is success.
    """
    return await set_configs(admin, RESOURCE_TOPIC, configs)


async def set_configs(
    admin: AIOKafkaAdminClient, resource_type: int, configs: dict[str, dict[str, str]]
) -> list[tuple[str, int, str | None]]:
    """Set these configs per resource (topics, groups), leaving every other one as it is."""
    request = IncrementalAlterConfigsRequest(
        [
            (
                resource_type,
                name,
                [(key, OPERATION_SET, value) for key, value in sorted(values.items())],
            )
            for name, values in configs.items()
        ]
    )
    response = await admin._send_request(request)
    return [
        (entry["resource_name"], entry["error_code"], entry["error_message"])
        for entry in response.to_object()["responses"]
    ]
