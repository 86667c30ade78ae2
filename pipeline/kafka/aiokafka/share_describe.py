"""Kafka's ShareGroupDescribe request (KIP-932, API key 77): a share group's state and members.

The brokers list consumer groups through DescribeGroups; a share group
answers only this request, which no client here offers (confluent-kafka
2.16 has no share-group admin call). Written on aiokafka's protocol layer
like pipeline.kafka.aiokafka.share_offsets, with the broker's own schema
(the 4.4 client jar's `ShareGroupDescribeRequestData.SCHEMAS`).
"""

from __future__ import annotations

from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    Boolean,
    CompactArray,
    CompactString,
    Int16,
    Int32,
    Schema,
    TaggedFields,
)

from pipeline.kafka.aiokafka.share_offsets import Uuid, ask_coordinator

API_KEY = 77


class ShareGroupDescribeResponse_v1(Response):  # type: ignore[misc]
    API_KEY = API_KEY
    API_VERSION = 1
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "groups",
            CompactArray(
                ("error_code", Int16),
                ("error_message", CompactString("utf-8")),
                ("group_id", CompactString("utf-8")),
                ("group_state", CompactString("utf-8")),
                ("group_epoch", Int32),
                ("assignment_epoch", Int32),
                ("assignor_name", CompactString("utf-8")),
                (
                    "members",
                    CompactArray(
                        ("member_id", CompactString("utf-8")),
                        ("rack_id", CompactString("utf-8")),
                        ("member_epoch", Int32),
                        ("client_id", CompactString("utf-8")),
                        ("client_host", CompactString("utf-8")),
                        ("subscribed_topic_names", CompactArray(CompactString("utf-8"))),
                        (
                            "assignment",
                            Schema(
                                (
                                    "topic_partitions",
                                    CompactArray(
                                        ("topic_id", Uuid),
                                        ("topic_name", CompactString("utf-8")),
                                        ("partitions", CompactArray(Int32)),
                                        ("tags", TaggedFields),
                                    ),
                                ),
                                ("tags", TaggedFields),
                            ),
                        ),
                        ("tags", TaggedFields),
                    ),
                ),
                ("authorized_operations", Int32),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class ShareGroupDescribeRequest_v1(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = API_KEY
    API_VERSION = 1
    RESPONSE_TYPE = ShareGroupDescribeResponse_v1
    SCHEMA = Schema(
        ("group_ids", CompactArray(CompactString("utf-8"))),
        ("include_authorized_operations", Boolean),
        ("tags", TaggedFields),
    )


class ShareGroupDescribeRequest(Request[ShareGroupDescribeRequest_v1]):  # type: ignore[misc]
    API_KEY = API_KEY

    def __init__(self, group: str) -> None:
        self._group = group

    def build(
        self, request_struct_class: type[ShareGroupDescribeRequest_v1]
    ) -> ShareGroupDescribeRequest_v1:
        return request_struct_class([self._group], False, {})


async def describe_share_group(admin: AIOKafkaAdminClient, group: str) -> dict[str, Any]:
    """The group's answer: error_code, error_message, group_state and members (each with
    member_id, client_id, client_host and assignment.topic_partitions)."""
    [answer] = await ask_coordinator(admin, group, ShareGroupDescribeRequest(group))
    return answer
