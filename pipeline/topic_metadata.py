"""How many partitions a topic has, with a fast, clear failure when it is missing.

aiokafka waits a whole request timeout (30 s) for an unknown topic and then
raises a bare UnknownTopicOrPartitionError; a user who forgot
`pipeline topics apply` deserves to hear that in seconds, by name.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pipeline.errors import PipelineError

DEFAULT_WAIT_S = 5.0


class TopicNotOnClusterError(PipelineError):
    def __init__(self, topic: str, bootstrap: str) -> None:
        self.topic = topic
        super().__init__(
            f"topic {topic!r} does not exist on the cluster at {bootstrap}; "
            "create it with `pipeline topics apply` (topics are never auto-created)."
        )


async def partition_count(client: Any, topic: str, wait_s: float = DEFAULT_WAIT_S) -> int:
    """Partitions of `topic` from the client's metadata, refreshed while it is missing.

    `client` is an aiokafka AIOKafkaClient (producer.client / consumer._client).
    """
    partitions = client.cluster.partitions_for_topic(topic)
    if partitions:
        return len(partitions)
    client.add_topic(topic)
    deadline = time.monotonic() + wait_s
    while True:
        await client.force_metadata_update()
        partitions = client.cluster.partitions_for_topic(topic)
        if partitions:
            return len(partitions)
        if time.monotonic() >= deadline:
            raise TopicNotOnClusterError(topic, str(client._bootstrap_servers))
        await asyncio.sleep(0.2)
