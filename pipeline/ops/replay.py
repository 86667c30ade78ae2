"""Replays and backfills: a bounded run over [from, to) of a topic, in a group of its own.

A replay never touches the live group: it consumes in `replay.<name>`,
which starts at each partition's range start and stops at its end. The
range is stored in the metadata of the replay group's commits, so a replay
interrupted and started again with the same name continues from its
committed progress over the same offsets, even when its `--to` was "now".

Two modes: through a processor (the worker runtime with its bulkheads,
retries, DLQ and breakers, outputs idempotent by derived event id), or a
copy of the records into another topic (key, value, headers and timestamp
kept).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.errors import ConfigError
from pipeline.kafka.port import Clients, ConsumerOptions, TopicPartition
from pipeline.ops.offset_ranges import PartitionRange
from pipeline.publishing.producer import EventProducer
from pipeline.reading.offsets import group_commits
from pipeline.resilience.ratelimit import TokenBucket
from pipeline.settings import PipelineSettings
from pipeline.wire.codec import record_copy

GROUP_PREFIX = "replay."
METADATA_VERSION = 1


def default_name(target: str, topic: str, start: str | None, end: str | None) -> str:
    """The same arguments give the same name, so a restart resumes."""
    digest = hashlib.sha1(f"{start}|{end}".encode()).hexdigest()[:8]
    return re.sub(r"[^A-Za-z0-9._-]", "_", f"{target}.{topic}.{digest}")


@dataclass(frozen=True)
class ReplayPlan:
    name: str
    topic: str
    ranges: dict[int, PartitionRange]
    rate_per_s: float | None = None
    resume_from: dict[int, int] = field(default_factory=dict)
    """Offsets an earlier run of this replay committed, per partition (resume_state)."""

    @property
    def group(self) -> str:
        return GROUP_PREFIX + self.name

    @property
    def total(self) -> int:
        return sum(r.size for r in self.ranges.values())

    def metadata(self) -> str:
        """Stored with every commit: what a restart must finish."""
        return json.dumps(
            {"v": METADATA_VERSION, "ranges": {p: [r.start, r.end] for p, r in self.ranges.items()}}
        )

    def end_of(self, tp: TopicPartition) -> int | None:
        found = self.ranges.get(tp.partition)
        return None if found is None else found.end


async def resume_state(
    clients: Clients, group: str, topic: str
) -> tuple[dict[int, PartitionRange] | None, dict[int, int]]:
    """The range a previous run of this replay stored, and its committed offsets."""
    committed = await group_commits(clients, group)
    offsets: dict[int, int] = {}
    stored: dict[int, PartitionRange] | None = None
    for tp, meta in committed.items():
        if tp.topic != topic or meta.offset < 0:
            continue
        offsets[tp.partition] = meta.offset
        if stored is None:
            stored = stored_ranges(meta.metadata)
    return stored, offsets


def stored_ranges(metadata: str | None) -> dict[int, PartitionRange] | None:
    """The range a replay stored with a commit (ReplayPlan.metadata); None when it is not one."""
    try:
        decoded = json.loads(metadata or "{}")
    except json.JSONDecodeError:
        return None
    if not isinstance(decoded, dict) or decoded.get("v") != METADATA_VERSION:
        return None
    return {
        int(p): PartitionRange(int(p), bounds[0], bounds[1])
        for p, bounds in decoded["ranges"].items()
    }


@dataclass
class ReplayProgress:
    """Per partition, how far the replay has committed; what the progress bar shows."""

    plan: ReplayPlan
    done: dict[int, int] = field(default_factory=dict)
    read: int = 0
    beyond_range: int = 0

    def advanced(self, partition: int) -> int:
        bounds = self.plan.ranges[partition]
        return max(0, min(self.done.get(partition, bounds.start), bounds.end) - bounds.start)

    @property
    def finished(self) -> bool:
        return all(
            self.done.get(p, r.start) >= r.end for p, r in self.plan.ranges.items() if r.size
        )


async def copy_range(
    settings: PipelineSettings,
    clients: Clients,
    plan: ReplayPlan,
    into_topic: str,
    progress: ReplayProgress,
    stop: asyncio.Event,
    on_batch: Callable[[], None] = lambda: None,
) -> None:
    """Copy the plan's records into `into_topic`; commits as it goes, resumable."""
    consumer = clients.consumer(ConsumerOptions(group_id=plan.group, isolation="read_committed"))
    await consumer.start()
    bucket = TokenBucket(plan.rate_per_s) if plan.rate_per_s else None
    try:
        async with EventProducer(settings, clients=clients) as producer:
            tps = [TopicPartition(plan.topic, p) for p, r in plan.ranges.items() if r.size]
            consumer.assign(tps)
            for tp in tps:
                bounds = plan.ranges[tp.partition]
                position = max(progress.done.get(tp.partition, bounds.start), bounds.start)
                progress.done[tp.partition] = position
                if position < bounds.end:
                    consumer.seek(tp, position)
                else:
                    consumer.pause(tp)
            while not progress.finished and not stop.is_set():
                batches = await consumer.fetch((), 0.5, 2000)
                pending = []
                commits: dict[TopicPartition, int] = {}
                for tp, records in batches.items():
                    bounds = plan.ranges[tp.partition]
                    end = bounds.end
                    inside = [r for r in records if bounds.start <= r.offset < end]
                    progress.beyond_range += len(records) - len(inside)
                    progress.read += len(inside)
                    if inside and bucket is not None:
                        await bucket.acquire(len(inside))
                    if inside:
                        encoded = [
                            record_copy(r.key, r.value, r.headers, r.topic, r.partition, r.offset)
                            for r in inside
                        ]
                        timestamps = [r.timestamp for r in inside]
                        pending.append(
                            await producer.submit_encoded(into_topic, encoded, timestamps)
                        )
                        commits[tp] = inside[-1].offset + 1
                    if records[-1].offset + 1 >= end:
                        commits[tp] = end
                        consumer.pause(tp)
                for tp in tps:
                    # Transaction markers or compaction can leave no record at end - 1.
                    end = plan.ranges[tp.partition].end
                    unfinished = tp not in commits and progress.done.get(tp.partition, end) < end
                    if unfinished and await consumer.position(tp) >= end:
                        commits[tp] = end
                        consumer.pause(tp)
                for future in pending:
                    await future
                if commits:
                    await consumer.commit(commits, plan.metadata())
                    for tp, offset in commits.items():
                        progress.done[tp.partition] = offset
                    on_batch()
    finally:
        await consumer.stop()


def check_target(plan: ReplayPlan, into_topic: str | None, processor: str | None) -> None:
    if bool(into_topic) == bool(processor):
        raise ConfigError("give either --processor P (run its handler) or --into-topic X (copy)")
    if into_topic == plan.topic:
        raise ConfigError(f"--into-topic {into_topic!r} is the topic being replayed")
