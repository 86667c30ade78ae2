"""Share groups in memory, as Kafka 4.4 runs them (KIP-932), for tests without a broker.

Per group and partition: where new records start (the group's
`share.auto.offset.reset`, latest unless it says earliest, fixed when the
group first reads the partition), and every record acquired and not yet
finished. Acquiring a record locks it to one member for
`share.record.lock.duration.ms` and counts a delivery; accept and reject
finish it; a release, an expired lock or a member leaving makes it
available again, unless it has been delivered `share.delivery.count.limit`
times, when it is archived (never delivered again). Kept honest by the
contract suite, which runs the same tests on the broker.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.kafka.memory.cluster import MemoryBroker
from pipeline.kafka.memory.log import MemoryRecord
from pipeline.kafka.memory.share_state import Delivery, Place, ShareGroup
from pipeline.kafka.port import (
    KafkaClientError,
    Outcome,
    SharedRecord,
    ShareOptions,
    TopicPartition,
)

DEFAULT_LOCK_MS = 30_000
DEFAULT_DELIVERY_LIMIT = 5


@dataclass(slots=True)
class MemorySharedRecord(MemoryRecord):
    delivery_count: int


class MemoryShareConsumer:
    """A member of a share group on the in-memory broker (the port's ShareConsumer)."""

    def __init__(self, broker: MemoryBroker, options: ShareOptions) -> None:
        self.broker = broker
        self.options = options
        self._topics: list[str] = []
        self._outcomes: dict[Place, Outcome] = {}
        self._last_poll: list[Place] = []
        self._started = False

    @property
    def _group(self) -> ShareGroup:
        return self.broker.share_groups.setdefault(
            self.options.group_id, ShareGroup(self.options.group_id)
        )

    def _config(self, name: str, default: int) -> int:
        return int(self.broker.group_configs.get(self.options.group_id, {}).get(name, default))

    async def start(self) -> None:
        self.broker.check_reachable()
        self._started = True

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        self._group.members.pop(id(self), None)
        self._finish()
        for delivery in self._group.unfinished.values():
            if delivery.holder == id(self):
                delivery.holder = None  # available to the next poll
        self._sweep()
        self.broker.wake_readers()

    async def subscribe(self, topics: Sequence[str]) -> None:
        self._require_started()
        for topic in topics:
            self.broker.topic(topic)  # an unknown topic fails here, as on a cluster
        self._topics = list(topics)
        client_id = self.options.client_id or "memory"
        self._group.members[id(self)] = (client_id, tuple(self._partitions()))

    async def poll(self, wait_s: float) -> list[SharedRecord]:
        self._require_started()
        if not self._topics:
            raise KafkaClientError("IllegalState: the share consumer is not subscribed")
        missing = [place for place in self._last_poll if place not in self._outcomes]
        if missing and not self._finished_elsewhere(missing):
            raise KafkaClientError(
                f"IllegalState: {len(missing)} record(s) of the last poll have no outcome yet "
                "(explicit acknowledgement: accept, release or reject each before polling)"
            )
        if self._outcomes:
            self._finish()  # a poll carries the outcomes given since the last, as on a broker
            self.broker.wake_readers()
        deadline = time.monotonic() + wait_s
        while True:
            self.broker.check_reachable()
            acquired = self._acquire(self.options.max_records)
            if acquired or time.monotonic() >= deadline:
                self._last_poll = [
                    (TopicPartition(r.topic, r.partition), r.offset) for r in acquired
                ]
                return list(acquired)
            await self.broker.wait_for_data(min(0.05, deadline - time.monotonic()))

    async def acknowledge(self, record: SharedRecord, outcome: Outcome) -> None:
        self._require_started()
        place = (TopicPartition(record.topic, record.partition), record.offset)
        delivery = self._group.unfinished.get(place)
        if delivery is None or delivery.holder != id(self):
            raise KafkaClientError(
                f"IllegalState: {record.topic}-{record.partition}@{record.offset} is not in "
                "flight for this member (acknowledged already, or its lock expired)"
            )
        self._outcomes[place] = outcome

    async def commit(self) -> dict[TopicPartition, str | None]:
        self._require_started()
        self.broker.check_reachable()
        answers = self._finish()
        self.broker.wake_readers()
        return answers

    # -- the group's bookkeeping ------------------------------------------------------------

    def _require_started(self) -> None:
        if not self._started:
            raise KafkaClientError("IllegalState: the share consumer is not started or closed")

    def _finished_elsewhere(self, places: list[Place]) -> bool:
        """Records of the last poll whose locks expired are no longer this member's to answer."""
        unfinished = self._group.unfinished
        return all(
            place not in unfinished or unfinished[place].holder != id(self) for place in places
        )

    def _finish(self) -> dict[TopicPartition, str | None]:
        group = self._group
        answers: dict[TopicPartition, str | None] = {}
        self._expire_locks()
        for place, outcome in self._outcomes.items():
            tp, offset = place
            delivery = group.unfinished.get(place)
            if delivery is None or delivery.holder != id(self):
                answers[tp] = f"INVALID_RECORD_STATE: {tp.topic}-{tp.partition}@{offset}"
                continue
            answers.setdefault(tp, None)
            group.written.add(tp)
            if outcome == "release":
                delivery.holder = None  # available to the next poll
            else:
                del group.unfinished[place]
        self._outcomes.clear()
        self._sweep()
        return answers

    def _sweep(self) -> None:
        """Archive what is available but delivered as often as the limit allows."""
        limit = self._config("share.delivery.count.limit", DEFAULT_DELIVERY_LIMIT)
        unfinished = self._group.unfinished
        for place in [p for p, d in unfinished.items() if d.holder is None and d.count >= limit]:
            del unfinished[place]

    def _expire_locks(self) -> None:
        now = time.monotonic()
        for delivery in self._group.unfinished.values():
            if delivery.holder is not None and delivery.expires <= now:
                delivery.holder = None  # available to the next poll
        self._sweep()

    def _acquire(self, limit: int) -> list[MemorySharedRecord]:
        group = self._group
        self._expire_locks()
        lock_s = self._config("share.record.lock.duration.ms", DEFAULT_LOCK_MS) / 1000
        chosen: list[Delivery] = [
            d for _, d in sorted(group.unfinished.items()) if d.holder is None
        ][:limit]
        for tp in self._partitions():
            if len(chosen) >= limit:
                break
            log = self.broker.partition_log(tp)
            start = group.starts.setdefault(tp, self._first_offset(tp))
            records, after = log.read(start, limit - len(chosen), False, self.broker.transactions)
            group.starts[tp] = after
            for record in records:
                delivery = group.unfinished[(tp, record.offset)] = Delivery(record)
                chosen.append(delivery)
        acquired = []
        for delivery in chosen:
            delivery.holder, delivery.expires = id(self), time.monotonic() + lock_s
            delivery.count += 1
            r = delivery.record
            acquired.append(
                MemorySharedRecord(
                    r.topic,
                    r.partition,
                    r.offset,
                    r.timestamp,
                    r.key,
                    r.value,
                    r.headers,
                    delivery.count,
                )
            )
        return acquired

    def _partitions(self) -> list[TopicPartition]:
        return [
            TopicPartition(topic, p)
            for topic in self._topics
            for p in range(len(self.broker.topic(topic).partitions))
        ]

    def _first_offset(self, tp: TopicPartition) -> int:
        configs = self.broker.group_configs.get(self.options.group_id, {})
        log = self.broker.partition_log(tp)
        if configs.get("share.auto.offset.reset", "latest") == "earliest":
            return log.log_start
        return log.high_watermark
