"""Kafka's DescribeShareGroupOffsets request (KIP-932, API key 90), which no client here offers.

A share group's backlog per partition: its start offset (below it every
record has an outcome) and, from version 1 (Kafka 4.2+), its lag (records
not yet acknowledged, in flight ones included). confluent-kafka 2.16 has no
share-group admin call and aiokafka no share groups at all, so the request
is written here on aiokafka's protocol layer and sent to the group's
coordinator. Its schema is the broker's own, printed from the 4.4 client
jar's `DescribeShareGroupOffsetsRequestData.SCHEMAS`.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    AbstractType,
    CompactArray,
    CompactString,
    Int16,
    Int32,
    Int64,
    Schema,
    TaggedFields,
)

API_KEY = 90
NO_LAG = -1
"""What a partition's lag reads when the broker could not compute it (version 0 has none)."""


class Uuid(AbstractType[bytes]):  # type: ignore[misc]
    @classmethod
    def encode(cls, value: bytes) -> bytes:
        return value

    @classmethod
    def decode(cls, data: BytesIO) -> bytes:
        value = data.read(16)
        if len(value) != 16:
            raise ValueError("Buffer underrun decoding a UUID")
        return value


class DescribeShareGroupOffsetsResponse_v1(Response):  # type: ignore[misc]
    API_KEY = API_KEY
    API_VERSION = 1
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "groups",
            CompactArray(
                ("group_id", CompactString("utf-8")),
                (
                    "topics",
                    CompactArray(
                        ("topic_name", CompactString("utf-8")),
                        ("topic_id", Uuid),
                        (
                            "partitions",
                            CompactArray(
                                ("partition_index", Int32),
                                ("start_offset", Int64),
                                ("leader_epoch", Int32),
                                ("lag", Int64),
                                ("error_code", Int16),
                                ("error_message", CompactString("utf-8")),
                                ("tags", TaggedFields),
                            ),
                        ),
                        ("tags", TaggedFields),
                    ),
                ),
                ("error_code", Int16),
                ("error_message", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class DescribeShareGroupOffsetsRequest_v1(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = API_KEY
    API_VERSION = 1
    RESPONSE_TYPE = DescribeShareGroupOffsetsResponse_v1
    SCHEMA = Schema(
        (
            "groups",
            CompactArray(
                ("group_id", CompactString("utf-8")),
                (
                    "topics",
                    CompactArray(
                        ("topic_name", CompactString("utf-8")),
                        ("partitions", CompactArray(Int32)),
                        ("tags", TaggedFields),
                    ),
                ),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class DescribeShareGroupOffsetsRequest(Request[DescribeShareGroupOffsetsRequest_v1]):  # type: ignore[misc]
    API_KEY = API_KEY

    def __init__(self, group: str) -> None:
        self._group = group

    def build(
        self, request_struct_class: type[DescribeShareGroupOffsetsRequest_v1]
    ) -> DescribeShareGroupOffsetsRequest_v1:
        # Null topics: every partition the group has state for.
        return request_struct_class([(self._group, None, {})], {})


async def ask_coordinator(
    admin: AIOKafkaAdminClient, group: str, request: Request[Any]
) -> list[dict[str, Any]]:
    """The groups of a group request's answer, asked of the group's coordinator."""
    coordinator = await admin.find_coordinator(group)
    response = await admin._send_request(request, coordinator)
    groups: list[dict[str, Any]] = response.to_object()["groups"]
    return groups


async def describe_share_group_offsets(
    admin: AIOKafkaAdminClient, group: str
) -> tuple[int, str | None, list[tuple[str, int, int, int, int, str | None]]]:
    """The group's error (code, message) and, per partition, (topic, partition, start offset,
    lag, error code, error message)."""
    [answer] = await ask_coordinator(admin, group, DescribeShareGroupOffsetsRequest(group))
    partitions = [
        (
            topic["topic_name"],
            p["partition_index"],
            p["start_offset"],
            p["lag"],
            p["error_code"],
            p["error_message"],
        )
        for topic in answer["topics"] or ()
        for p in topic["partitions"] or ()
    ]
    return answer["error_code"], answer["error_message"], partitions
