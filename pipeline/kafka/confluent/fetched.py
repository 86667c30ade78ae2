"""What a confluent consumer knows without asking librdkafka: records fetched ahead of
their turn, and each partition's position and high water as of the last fetch.

librdkafka hands over whatever any unpaused partition has, but the runtime
asks for some partitions only (it holds back full ones): records of the
others wait here, in order, for the call that asks for them (at most one
fetch's worth: the runtime pauses a partition it holds back). The event
loop's synchronous questions (positions, high waters) are answered from a
mirror the consumer thread refreshes after each fetch, so the loop never
waits behind a blocked `consume()`.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence

from confluent_kafka import Consumer

from pipeline.kafka.confluent.records import ConfluentRecord, ours, theirs
from pipeline.kafka.port import TopicPartition

MIRROR_REFRESH_S = 0.5
"""How often positions and high waters of partitions with nothing new are read again."""


class FetchedAhead:
    def __init__(self) -> None:
        self._kept: dict[TopicPartition, list[ConfluentRecord]] = {}

    def keep(self, tp: TopicPartition, records: list[ConfluentRecord]) -> None:
        kept = self._kept.setdefault(tp, [])
        if kept and records and records[0].offset <= kept[-1].offset:
            # Fetched again after the position moved back: handed over once, in one list,
            # they would be handled twice (docs/design-notes.md#fetched-again).
            last = kept[-1].offset
            records = [record for record in records if record.offset > last]
        kept.extend(records)

    def first_offset(self, tp: TopicPartition) -> int | None:
        """The offset of the next record waiting here for `tp`, if any."""
        waiting = self._kept.get(tp)
        return waiting[0].offset if waiting else None

    def drop(self, tp: TopicPartition) -> None:
        """After a seek or a revocation: what was kept is no longer next."""
        self._kept.pop(tp, None)

    def keep_only(self, partitions: Collection[TopicPartition]) -> None:
        for tp in list(self._kept):
            if tp not in partitions:
                del self._kept[tp]

    def take(
        self, wanted: set[TopicPartition] | None, max_records: int
    ) -> dict[TopicPartition, Sequence[ConfluentRecord]]:
        """Kept records of the wanted partitions (None: any), at most `max_records`."""
        taken: dict[TopicPartition, Sequence[ConfluentRecord]] = {}
        for tp in list(self._kept):
            if wanted is not None and tp not in wanted:
                continue
            records = self._kept[tp]
            if len(records) <= max_records:
                taken[tp] = self._kept.pop(tp)
            else:
                taken[tp], self._kept[tp] = records[:max_records], records[max_records:]
            max_records -= len(taken[tp])
            if max_records <= 0:
                break
        return taken


class PositionMirror:
    def __init__(self) -> None:
        self.positions: dict[TopicPartition, int] = {}
        self.highwaters: dict[TopicPartition, int] = {}
        self._refreshed = 0.0
        self._unsettled: set[TopicPartition] = set()
        """Restarted after records of theirs were dropped: librdkafka's position counts
        those records until the next is fetched (a committer that trusted it skipped them:
        "batch 0..239 does not follow offset 239", a crashed replica)."""

    def forget(self, tp: TopicPartition) -> None:
        self.positions.pop(tp, None)
        self.highwaters.pop(tp, None)
        self._unsettled.discard(tp)

    def settled(self, tp: TopicPartition) -> bool:
        return tp not in self._unsettled

    def unsettle(self, partitions: Collection[TopicPartition]) -> None:
        """No position for these until a record of theirs is fetched again."""
        for tp in partitions:
            self.positions.pop(tp, None)
        self._unsettled.update(partitions)

    def refresh(
        self,
        client: Consumer,
        assigned: Collection[TopicPartition],
        fetched: Mapping[TopicPartition, list[ConfluentRecord]],
    ) -> None:
        """On the consumer thread: the fetched partitions now, every assigned one now and then."""
        self._unsettled.difference_update(fetched)
        now = time.monotonic()
        if now - self._refreshed >= MIRROR_REFRESH_S:
            self._refreshed = now
            tps = list(assigned)
        else:
            tps = list(fetched)
        if not tps:
            return
        settled = [theirs(tp) for tp in tps if tp not in self._unsettled]
        for position in client.position(settled) if settled else []:
            if position.offset >= 0:
                self.positions[ours(position)] = position.offset
        for tp in tps:
            low_high = client.get_watermark_offsets(theirs(tp), cached=True)
            if low_high is not None and low_high[1] >= 0:
                self.highwaters[tp] = low_high[1]
