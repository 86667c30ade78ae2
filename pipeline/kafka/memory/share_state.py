"""What the in-memory broker keeps per share group (pipeline.kafka.memory.share_groups)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pipeline.kafka.memory.log import MemoryRecord
from pipeline.kafka.port import TopicPartition

Place = tuple[TopicPartition, int]


@dataclass
class Delivery:
    record: MemoryRecord
    count: int = 0
    holder: int | None = None
    """The member holding its lock; None: available to the next poll."""
    expires: float = 0.0


@dataclass
class ShareGroup:
    name: str
    starts: dict[TopicPartition, int] = field(default_factory=dict)
    """The next offset never delivered, per partition."""
    unfinished: dict[Place, Delivery] = field(default_factory=dict)
    members: dict[int, tuple[str, tuple[TopicPartition, ...]]] = field(default_factory=dict)
    """Its members now: client id and the partitions of the topics it subscribed to."""
    written: set[TopicPartition] = field(default_factory=set)
    """Partitions with an outcome given: before the first, a broker reports no backlog."""

    def settled(self, ends: Mapping[TopicPartition, int]) -> bool:
        """Every record below `ends` delivered and given its outcome (or archived)."""
        return not self.unfinished and all(
            end == 0 or self.starts.get(tp, 0) >= end for tp, end in ends.items()
        )
