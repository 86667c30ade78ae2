"""A cluster sampled every few seconds: groups, their lag, topics and dead letters, with history.

One consumer and one admin for the whole cluster (not one per group, as
`pipeline lag` has): a console stays open for hours and watches tens of
groups. Lag figures come from the same function `pipeline lag` uses
(pipeline.scaling.lag.measure), so both show the same numbers for the same
offsets. Fifteen minutes of samples are kept in memory for the charts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from pipeline.catalogue import Catalogue
from pipeline.kafka.port import (
    Admin,
    Clients,
    Committed,
    Consumer,
    ConsumerOptions,
    GroupDescription,
    TopicPartition,
)
from pipeline.ops.replay import GROUP_PREFIX as REPLAY_PREFIX
from pipeline.scaling.lag import GroupLag, Reading, measure

log = logging.getLogger("pipeline.console")
HISTORY_S = 15 * 60


@dataclass(frozen=True)
class TopicView:
    name: str
    partitions: int
    records: int
    """Records the topic holds now (end minus log start, summed over partitions)."""
    end_offsets: dict[int, int]
    dlq_of: str | None = None
    """For a dead-letter topic, the topic whose records it keeps."""


@dataclass
class GroupView:
    group: str
    description: GroupDescription
    lags: list[GroupLag]
    """One per topic the group has committed on or is assigned."""
    replay: bool
    commits: dict[TopicPartition, Committed] = field(default_factory=dict)

    @property
    def lag(self) -> int:
        return sum(sample.lag for sample in self.lags)

    def to_json(self) -> dict[str, object]:
        return {
            "group": self.group,
            "state": self.description.state,
            "members": [
                {
                    "member_id": m.member_id,
                    "client_id": m.client_id,
                    "host": m.host,
                    "assignment": [[tp.topic, tp.partition] for tp in m.assignment],
                }
                for m in self.description.members
            ],
            "replay": self.replay,
            "lag": self.lag,
            "topics": [sample.to_json() for sample in self.lags],
        }


@dataclass(frozen=True)
class Point:
    at: float
    lag: int
    produce_rate: float | None
    consume_rate: float | None
    partition_lag: dict[str, int]
    """`topic-partition` → lag, for the group page's chart."""


@dataclass
class Snapshot:
    at: float = 0.0
    topics: dict[str, TopicView] = field(default_factory=dict)
    groups: dict[str, GroupView] = field(default_factory=dict)
    error: str | None = None
    """Why the last sample failed (the previous figures are kept meanwhile)."""


class ClusterWatch:
    def __init__(
        self,
        clients: Clients,
        catalogue: Catalogue | None,
        prefix: str = "",
        interval_s: float = 5.0,
        share_groups: Mapping[str, str] | None = None,
    ) -> None:
        """`share_groups`: queue-mode processors' groups and their topics (the brokers list
        consumer groups only; a share group commits nothing)."""
        self.clients = clients
        self.catalogue = catalogue
        self.prefix = prefix
        self.share_groups = {g: t for g, t in (share_groups or {}).items() if self.watched(g)}
        self.interval_s = interval_s
        self.snapshot = Snapshot()
        self.history: dict[str, deque[Point]] = {}
        self._previous: dict[tuple[str, str], Reading] = {}
        self._starts: dict[str, dict[int, int]] = {}
        self._consumer: Consumer | None = None
        self._admin: Admin | None = None
        self._task: asyncio.Task[None] | None = None
        self.sampled = asyncio.Event()
        """Set after each sample (tests and `pipeline top` wait on it)."""

    async def start(self) -> ClusterWatch:
        self._consumer = self.clients.consumer(ConsumerOptions())
        await self._consumer.start()
        self._admin = self.clients.admin()
        await self._admin.start()
        await self.sample()
        self._task = asyncio.ensure_future(self._run())
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()
        if self._admin is not None:
            await self._admin.stop()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.sample()
            except Exception as exc:  # noqa: BLE001 - a console outlives a broker's bad minute
                self.snapshot.error = f"{type(exc).__name__}: {exc}"
                log.warning("sampling the cluster failed (figures kept): %s", self.snapshot.error)

    def watched(self, name: str) -> bool:
        return not self.prefix or self.prefix in name

    async def sample(self) -> Snapshot:
        admin, consumer = self._admin, self._consumer
        assert admin is not None and consumer is not None, "start() first"
        now = time.monotonic()
        groups = [g for g in await admin.list_groups() if self.watched(g)]
        descriptions = await asyncio.gather(*(admin.describe_group(g) for g in groups))
        commits = await asyncio.gather(*(admin.group_commits(g) for g in groups))
        # Each group's topics: those it committed on and those its members are assigned.
        topics_of = [
            {tp.topic for tp in committed}
            | {tp.topic for m in described.members for tp in m.assignment}
            for described, committed in zip(descriptions, commits, strict=True)
        ]
        wanted_topics = set(self._catalogue_topics()).union(*topics_of, self.share_groups.values())
        topics = await self._topics(admin, consumer, sorted(wanted_topics))
        snapshot = Snapshot(at=time.time(), topics=topics)
        for described, committed, wanted in zip(descriptions, commits, topics_of, strict=True):
            group = described.group
            lags = []
            for topic in sorted(wanted & set(topics)):
                view = topics[topic]
                offsets = {
                    tp.partition: c.offset
                    for tp, c in committed.items()
                    if tp.topic == topic and c.offset >= 0
                }
                sample, reading = measure(
                    group,
                    topic,
                    now,
                    view.end_offsets,
                    self._starts[topic],
                    offsets,
                    self._previous.get((group, topic)),
                )
                self._previous[(group, topic)] = reading
                lags.append(sample)
            snapshot.groups[group] = GroupView(
                group, described, lags, group.startswith(REPLAY_PREFIX), committed
            )
            self._remember(group, lags)
        for group, topic in self.share_groups.items():
            if topic in topics:
                await self._sample_share_group(admin, snapshot, group, topics[topic], now)
        # Groups deleted since: their history and rates go with them.
        for gone in set(self.history) - set(snapshot.groups):
            del self.history[gone]
        self._previous = {k: v for k, v in self._previous.items() if k[0] in snapshot.groups}
        self.snapshot = snapshot
        self.sampled.set()
        self.sampled = asyncio.Event()
        return snapshot

    async def _sample_share_group(
        self, admin: Admin, snapshot: Snapshot, group: str, view: TopicView, now: float
    ) -> None:
        found = await admin.share_group_backlog(group)
        backlog = {tp.partition: b for tp, b in found.items() if tp.topic == view.name}
        sample, reading = measure(
            group,
            view.name,
            now,
            view.end_offsets,
            self._starts[view.name],
            {p: b.start for p, b in backlog.items() if b.start >= 0},
            self._previous.get((group, view.name)),
            backlog=backlog,
        )
        self._previous[(group, view.name)] = reading
        described = await admin.describe_share_group(group)
        snapshot.groups[group] = GroupView(group, described, [sample], False)
        self._remember(group, [sample])

    def _catalogue_topics(self) -> list[str]:
        if self.catalogue is None:
            return []
        names = []
        for spec in self.catalogue:
            names.append(spec.name)
            if spec.dlq:
                names.append(spec.dlq_name)
        return names

    async def _topics(
        self, admin: Admin, consumer: Consumer, names: Collection[str]
    ) -> dict[str, TopicView]:
        # One metadata request; topics that do not exist (a catalogue not applied) are left out.
        described = await admin.describe_topics(names)
        counts = {name: len(infos) for name, infos in described.items()}
        partitions = [TopicPartition(name, p) for name, n in counts.items() for p in range(n)]
        ends = await consumer.end_offsets(partitions) if partitions else {}
        starts = await consumer.beginning_offsets(partitions) if partitions else {}
        dlqs = self._dlq_sources()
        views = {}
        for name, count in counts.items():
            end = {p: ends[TopicPartition(name, p)] for p in range(count)}
            start = {p: starts[TopicPartition(name, p)] for p in range(count)}
            self._starts[name] = start
            views[name] = TopicView(
                name,
                count,
                sum(end[p] - start[p] for p in end),
                end,
                dlqs.get(name),
            )
        return views

    def _dlq_sources(self) -> dict[str, str]:
        if self.catalogue is None:
            return {}
        return {spec.dlq_name: spec.name for spec in self.catalogue if spec.dlq}

    def _remember(self, group: str, lags: list[GroupLag]) -> None:
        points = self.history.setdefault(group, deque())
        rates_in = [s.produce_rate for s in lags]
        rates_out = [s.consume_rate for s in lags]
        points.append(
            Point(
                time.time(),
                sum(s.lag for s in lags),
                None if None in rates_in else sum(r or 0.0 for r in rates_in),
                None if None in rates_out else sum(r or 0.0 for r in rates_out),
                {f"{s.topic}-{p.partition}": p.lag for s in lags for p in s.partitions},
            )
        )
        while points and points[0].at < time.time() - HISTORY_S:
            points.popleft()

    async def __aenter__(self) -> ClusterWatch:
        return await self.start()

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()
