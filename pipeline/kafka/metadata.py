"""A topic that is not on the cluster: said fast, by name.

aiokafka waits a whole request timeout (30 s) for an unknown topic and then
raises a bare UnknownTopicOrPartitionError; a user who forgot
`pipeline topics apply` deserves to hear that in seconds, by name. The
adapters' `partition_count` raise this after DEFAULT_WAIT_S.
"""

from __future__ import annotations

from pipeline.errors import PipelineError

DEFAULT_WAIT_S = 5.0


class TopicNotOnClusterError(PipelineError):
    def __init__(self, topic: str, bootstrap: str) -> None:
        self.topic = topic
        super().__init__(
            f"topic {topic!r} does not exist on the cluster at {bootstrap}; "
            "create it with `pipeline topics apply` (topics are never auto-created)."
        )
