"""From "--from 2026-11-01T10:00 --to now" to per-partition offset ranges.

Times are resolved with ListOffsets by timestamp (offsets-for-times): a
range [from, to) holds the records whose timestamp is at or after `from`
and before `to`, per partition. Offsets are taken as they are, clamped to
what the log still holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pipeline.errors import ConfigError, PipelineError
from pipeline.kafka.metadata import TopicNotOnClusterError
from pipeline.kafka.port import Clients, Consumer, ConsumerOptions, TopicPartition

Position = datetime | int | None
"""A moment, an offset, or None (the start of the log for `from`, now for `to`)."""


def parse_position(text: str | None, what: str) -> Position:
    """`2026-11-01T10:00:00Z`, `2026-11-01`, an offset like `1200`, or `now`/`earliest`."""
    if text is None or text.strip().lower() in ("now", "earliest", "latest", ""):
        return None
    raw = text.strip()
    if raw.isdigit():
        return int(raw)
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{what} {text!r} is neither an ISO time (2026-11-01T10:00:00Z), "
            "an offset (1200), nor 'now'"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_partitions(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ConfigError(
            f"--partitions {text!r}: write a comma-separated list like 0,3,7"
        ) from None


class EmptyRangeError(PipelineError):
    """The range holds no record on any chosen partition."""


@dataclass(frozen=True)
class PartitionRange:
    partition: int
    start: int
    end: int
    """Exclusive."""

    @property
    def size(self) -> int:
        return max(0, self.end - self.start)


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


async def chosen_partitions(
    consumer: Consumer, topic: str, partitions: list[int] | None, wait_s: float = 5
) -> list[TopicPartition]:
    """The topic's partitions, or the ones asked for; an error naming the fix otherwise."""
    try:
        count = await consumer.partition_count(topic, wait_s)
    except TopicNotOnClusterError:
        raise ConfigError(
            f"topic {topic!r} does not exist on the cluster "
            "(`pipeline topics list` shows those that do)"
        ) from None
    chosen = partitions if partitions is not None else list(range(count))
    unknown = [p for p in chosen if not 0 <= p < count]
    if unknown:
        raise ConfigError(f"topic {topic!r} has partitions 0–{count - 1}; no {unknown}")
    return [TopicPartition(topic, p) for p in chosen]


async def resolve_ranges(
    clients: Clients,
    topic: str,
    start: Position,
    end: Position,
    partitions: list[int] | None = None,
) -> list[PartitionRange]:
    """Per-partition [start, end) offsets for a time or offset range; errors name the fix."""
    if isinstance(start, datetime) and isinstance(end, datetime) and start >= end:
        raise ConfigError(f"--from {start.isoformat()} is not before --to {end.isoformat()}")
    if isinstance(start, int) and isinstance(end, int) and start >= end:
        raise ConfigError(f"--from offset {start} is not before --to offset {end}")
    consumer = clients.consumer(ConsumerOptions())
    await consumer.start()
    try:
        tps = await chosen_partitions(consumer, topic, partitions)
        beginnings = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)

        async def offsets_at(position: Position, default: dict[TopicPartition, int]) -> list[int]:
            if position is None:
                return [default[tp] for tp in tps]
            if isinstance(position, int):
                return [min(max(position, beginnings[tp]), ends[tp]) for tp in tps]
            found = await consumer.offsets_for_times({tp: _millis(position) for tp in tps})
            # No record at or after the moment: the range reaches the end of the log.
            return [ends[tp] if (at := found.get(tp)) is None else at for tp in tps]

        starts = await offsets_at(start, beginnings)
        stops = await offsets_at(end, ends)
    finally:
        await consumer.stop()
    ranges = [
        PartitionRange(tp.partition, first, max(first, stop))
        for tp, first, stop in zip(tps, starts, stops, strict=True)
    ]
    if not any(r.size for r in ranges):
        raise EmptyRangeError(
            f"no records of {topic!r} in that range on partitions "
            f"{', '.join(str(r.partition) for r in ranges)}: nothing to do"
        )
    return ranges
