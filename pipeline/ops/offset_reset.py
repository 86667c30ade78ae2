"""Moving a consumer group's committed offsets, the way an operator does before a re-run.

The group must be empty: a running member would overwrite the new offsets
with its next commit (and the broker refuses commits from outside a live
group anyway). `force` tries regardless and reports what the broker said.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pipeline.errors import ConfigError, PipelineError
from pipeline.kafka.port import Clients, ConsumerOptions, KafkaClientError, TopicPartition
from pipeline.ops.offset_ranges import chosen_partitions
from pipeline.reading.offsets import committed_offsets


@dataclass(frozen=True)
class ResetTarget:
    """Exactly one of: a moment, an offset, earliest, latest, or a shift."""

    to_datetime: datetime | None = None
    to_offset: int | None = None
    to_earliest: bool = False
    to_latest: bool = False
    shift_by: int | None = None

    def __post_init__(self) -> None:
        chosen = [
            self.to_datetime is not None,
            self.to_offset is not None,
            self.to_earliest,
            self.to_latest,
            self.shift_by is not None,
        ]
        if sum(chosen) != 1:
            raise ConfigError(
                "choose exactly one of --to-datetime, --to-offset, --to-earliest, "
                "--to-latest, --shift-by"
            )


@dataclass(frozen=True)
class ResetRow:
    partition: int
    before: int | None
    after: int
    log_start: int
    log_end: int


async def plan_reset(
    clients: Clients,
    group: str,
    topic: str,
    target: ResetTarget,
    partitions: list[int] | None = None,
) -> list[ResetRow]:
    consumer = clients.consumer(ConsumerOptions())
    await consumer.start()
    try:
        tps = await chosen_partitions(consumer, topic, partitions)
        starts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        found: dict[TopicPartition, int | None] = {}
        if target.to_datetime is not None:
            millis = int(target.to_datetime.timestamp() * 1000)
            found = await consumer.offsets_for_times({tp: millis for tp in tps})
    finally:
        await consumer.stop()
    committed = await committed_offsets(clients, group, topic)
    if not committed and target.shift_by is not None:
        raise ConfigError(f"group {group!r} has no committed offsets on {topic!r} to shift")
    rows = []
    for tp in tps:
        low, high = starts[tp], ends[tp]
        before = committed.get(tp.partition)
        if target.to_datetime is not None:
            at = found.get(tp)
            after = high if at is None else at
        elif target.to_offset is not None:
            after = target.to_offset
        elif target.to_earliest:
            after = low
        elif target.to_latest:
            after = high
        else:
            assert target.shift_by is not None
            after = (before if before is not None else low) + target.shift_by
        rows.append(ResetRow(tp.partition, before, min(max(after, low), high), low, high))
    return rows


async def apply_reset(clients: Clients, group: str, topic: str, rows: list[ResetRow]) -> None:
    consumer = clients.consumer(ConsumerOptions(group_id=group))
    await consumer.start()
    try:
        offsets = {TopicPartition(topic, row.partition): row.after for row in rows}
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    except KafkaClientError as exc:
        raise PipelineError(
            f"the broker refused the new offsets for group {group!r}: {exc}. "
            "Stop the group's members first"
        ) from exc
    finally:
        await consumer.stop()
