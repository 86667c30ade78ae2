"""Consumer-group lag from the brokers: end offsets, committed offsets, rates, ages.

Everything here is asked of the brokers (ListOffsets, OffsetFetch, and one
small fetch per lagging partition for the oldest record's timestamp), never
of the group's members: the figures stay right while a partition is paused,
while a member is stuck, and for a group with no member running at all.

Lag counts records not yet committed. A partition the group never committed
counts from the log start offset, as a worker with auto.offset.reset =
earliest would start there. A share group (queue mode) commits nothing:
its lag is what the brokers count as without an outcome (in flight
included), and its "committed" offset is its start offset, below which
every record has one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass

from pipeline.errors import PipelineError
from pipeline.kafka.port import (
    Admin,
    Clients,
    Consumer,
    ConsumerOptions,
    GroupDescription,
    KafkaClientError,
    ShareBacklog,
    TopicPartition,
)
from pipeline.metrics import Labels, Metrics, labels_of
from pipeline.reading.offsets import member_count

log = logging.getLogger("pipeline.lag")

AGE_FETCH_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class PartitionLag:
    partition: int
    end_offset: int
    committed: int | None
    lag: int
    produce_rate: float | None
    consume_rate: float | None
    oldest_age_s: float | None
    """Age of the oldest record not yet committed (None when there is none)."""

    @property
    def lag_seconds(self) -> float | None:
        """Time to catch up at the measured consumption rate (inf when it consumes nothing)."""
        if self.lag == 0:
            return 0.0
        if self.consume_rate is None:
            return None
        return self.lag / self.consume_rate if self.consume_rate > 0 else float("inf")


@dataclass(frozen=True)
class GroupLag:
    group: str
    topic: str
    measured_at: float
    """Wall-clock seconds."""
    partitions: list[PartitionLag]
    kind: str = "consumer"
    """consumer, or share: a queue-mode processor's share group."""

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions)

    @property
    def produce_rate(self) -> float | None:
        rates = [p.produce_rate for p in self.partitions]
        return None if None in rates else sum(r or 0.0 for r in rates)

    @property
    def consume_rate(self) -> float | None:
        rates = [p.consume_rate for p in self.partitions]
        return None if None in rates else sum(r or 0.0 for r in rates)

    @property
    def lag_seconds(self) -> float | None:
        rate = self.consume_rate
        if self.lag == 0:
            return 0.0
        if rate is None:
            return None
        return self.lag / rate if rate > 0 else float("inf")

    @property
    def oldest_age_s(self) -> float | None:
        ages = [p.oldest_age_s for p in self.partitions if p.oldest_age_s is not None]
        return max(ages) if ages else None

    @property
    def partitions_with_lag(self) -> int:
        return sum(1 for p in self.partitions if p.lag > 0)

    def to_json(self) -> dict[str, object]:
        return {
            "group": self.group,
            "kind": self.kind,
            "topic": self.topic,
            "measured_at": self.measured_at,
            "lag": self.lag,
            "lag_seconds": _finite(self.lag_seconds),
            "oldest_age_s": self.oldest_age_s,
            "produce_rate": self.produce_rate,
            "consume_rate": self.consume_rate,
            "partitions": [
                {**asdict(p), "lag_seconds": _finite(p.lag_seconds)} for p in self.partitions
            ],
        }


def _finite(value: float | None) -> float | str | None:
    """JSON has no infinity: say it in words."""
    if value is not None and value == float("inf"):
        return "inf"
    return value


Reading = tuple[float, dict[int, int], dict[int, int]]
"""(monotonic time, end offsets, positions): what the next sample's rates are measured from."""


def positions_of(
    committed: dict[int, int], starts: dict[int, int], ends: dict[int, int]
) -> dict[int, int]:
    """Where the group reads next: its commit, or the log start (no commit, or deleted past it)."""
    return {p: max(committed.get(p, starts[p]), starts[p]) for p in ends}


def measure(
    group: str,
    topic: str,
    now: float,
    ends: dict[int, int],
    starts: dict[int, int],
    committed: dict[int, int],
    previous: Reading | None,
    ages: dict[int, float] | None = None,
    backlog: dict[int, ShareBacklog] | None = None,
) -> tuple[GroupLag, Reading]:
    """One sample of a group's lag from the offsets read; rates against `previous`.

    Pure, so `pipeline lag`, the supervisor and the console give the same
    figures for the same offsets. `backlog`: a share group's, per partition
    (its `committed` are then the start offsets); its lag is taken as the
    brokers count it, and the consume rate is the rate it shrinks at.
    """
    positions = positions_of(committed, starts, ends)
    for partition, shared in (backlog or {}).items():
        if partition in ends and shared.lag >= 0:
            positions[partition] = max(positions[partition], ends[partition] - shared.lag)
    partitions = []
    for partition, end in sorted(ends.items()):
        produce_rate = consume_rate = None
        if previous is not None and now > previous[0] and partition in previous[1]:
            elapsed = now - previous[0]
            produce_rate = max(0.0, (end - previous[1][partition]) / elapsed)
            consume_rate = max(0.0, (positions[partition] - previous[2][partition]) / elapsed)
        partitions.append(
            PartitionLag(
                partition=partition,
                end_offset=end,
                committed=committed.get(partition),
                lag=max(0, end - positions[partition]),
                produce_rate=produce_rate,
                consume_rate=consume_rate,
                oldest_age_s=(ages or {}).get(partition),
            )
        )
    kind = "consumer" if backlog is None else "share"
    return GroupLag(group, topic, time.time(), partitions, kind), (now, ends, positions)


class LagMonitor:
    """Samples one group's lag on one topic; rates come from consecutive samples."""

    def __init__(
        self,
        clients: Clients,
        group: str,
        topic: str,
        measure_age: bool = True,
        share: bool | None = None,
    ) -> None:
        """`share`: whether the group is a share group (a queue-mode processor's); None:
        taken as one when it commits nothing and the brokers hold share state for it."""
        self.clients = clients
        self.group = group
        self.topic = topic
        self.measure_age = measure_age
        self.share = share
        self._consumer: Consumer | None = None
        self._admin: Admin | None = None
        self._partitions: list[TopicPartition] = []
        self._previous: Reading | None = None
        self.latest: GroupLag | None = None

    async def start(self) -> LagMonitor:
        # Small fetches: only the first record's timestamp of each lagging partition matters.
        self._consumer = self.clients.consumer(ConsumerOptions(max_partition_fetch_bytes=16 * 1024))
        await self._consumer.start()
        self._admin = self.clients.admin()
        await self._admin.start()
        count = await self._consumer.partition_count(self.topic)
        self._partitions = [TopicPartition(self.topic, p) for p in range(count)]
        self._consumer.assign(self._partitions)
        return self

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        if self._admin is not None:
            await self._admin.stop()

    async def __aenter__(self) -> LagMonitor:
        return await self.start()

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    async def sample(self) -> GroupLag:
        consumer, admin = self._consumer, self._admin
        if consumer is None or admin is None:
            raise PipelineError("LagMonitor.start() first")
        now = time.monotonic()
        ends_by_tp = await consumer.end_offsets(self._partitions)
        starts_by_tp = await consumer.beginning_offsets(self._partitions)
        fetched = await admin.group_commits(self.group)
        ends = {tp.partition: ends_by_tp[tp] for tp in self._partitions}
        starts = {tp.partition: starts_by_tp[tp] for tp in self._partitions}
        committed = {
            tp.partition: meta.offset
            for tp, meta in fetched.items()
            if tp.topic == self.topic and meta.offset >= 0
        }
        backlog = None
        if self.share or (self.share is None and not committed):
            backlog = await self._share_backlog()
        if backlog is not None:
            committed = {p: shared.start for p, shared in backlog.items() if shared.start >= 0}
        ages = (
            await self._ages(positions_of(committed, starts, ends), ends)
            if self.measure_age
            else {}
        )
        self.latest, self._previous = measure(
            self.group, self.topic, now, ends, starts, committed, self._previous, ages, backlog
        )
        return self.latest

    async def _share_backlog(self) -> dict[int, ShareBacklog] | None:
        """The group's backlog when it is a share group; None when it is not (or, not told,
        has no share state: a consumer group yet to commit reads the same lag either way)."""
        assert self._admin is not None
        try:
            found = await self._admin.share_group_backlog(self.group)
        except KafkaClientError as exc:
            if self.share:
                raise
            log.debug("group %s read as a consumer group: %s", self.group, exc)
            return None
        backlog = {tp.partition: b for tp, b in found.items() if tp.topic == self.topic}
        return backlog if backlog or self.share else None

    async def describe_group(self) -> GroupDescription:
        """The group's state (Stable, PreparingRebalance, ...) and its members."""
        assert self._admin is not None
        return await self._admin.describe_group(self.group)

    async def members(self) -> int:
        """Members the group has now (0 when it is empty or unknown)."""
        assert self._admin is not None
        if self.share or (self.latest is not None and self.latest.kind == "share"):
            return len((await self._admin.describe_share_group(self.group)).members)
        return await member_count(self._admin, self.group)

    async def _ages(self, positions: dict[int, int], ends: dict[int, int]) -> dict[int, float]:
        """Age of the record at each lagging partition's committed position."""
        consumer = self._consumer
        assert consumer is not None
        lagging = [p for p in positions if ends[p] > positions[p]]
        if not lagging:
            return {}
        for partition in lagging:
            consumer.seek(TopicPartition(self.topic, partition), positions[partition])
        wanted = {TopicPartition(self.topic, p) for p in lagging}
        found: dict[int, float] = {}
        deadline = time.monotonic() + AGE_FETCH_TIMEOUT_S
        while wanted and time.monotonic() < deadline:
            batches = await consumer.fetch(wanted, 0.2, len(wanted))
            for tp, records in batches.items():
                if records:
                    found[tp.partition] = max(0.0, time.time() - records[0].timestamp / 1000)
                    wanted.discard(tp)
            await asyncio.sleep(0)
        return found


def export_lag(metrics: Metrics, monitor: LagMonitor) -> None:
    """Gauges of the monitor's latest sample, for Prometheus (and KEDA's Prometheus scaler)."""

    def per_partition(read: str) -> dict[Labels, float]:
        sample = monitor.latest
        if sample is None:
            return {}
        values: dict[tuple[tuple[str, str], ...], float] = {}
        for p in sample.partitions:
            value = getattr(p, read)
            if value is None or value == float("inf"):
                continue
            labels = labels_of(group=sample.group, partition=p.partition, topic=sample.topic)
            values[labels] = float(value)
        return values

    metrics.gauge("group_lag_records", lambda: per_partition("lag"))
    metrics.gauge(
        "group_lag_seconds",
        lambda: per_partition("lag_seconds"),
    )
    metrics.gauge(
        "group_oldest_unconsumed_age_seconds",
        lambda: per_partition("oldest_age_s"),
    )
