"""Retention that deletes records under a running worker, made as loud as at assignment.

A partition's fetch position that retention overtakes (a consumer held
back behind a slow partition, a long pause, a short `retention.ms`) is
out of range at the next fetch, and the client moves it to the log start
by itself (auto.offset.reset=earliest), with no line and no count: the
records in between were never handled. At assignment the committed offset
is compared with the log start (pipeline.runtime.partitions); this does
the same while the worker runs.

Records arrive in offset order with gaps where nothing is handed over
(transaction markers, aborted and compacted records), so a gap alone
proves nothing. A gap of two offsets or more holds the partition's records
back while one ListOffsets asks for the log start: past the offset the
worker expected, retention deleted the difference, and the worker's
offset_reset policy decides, exactly as at assignment. Otherwise the held
records go on, a round trip late.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from pipeline.kafka.port import Consumer, KafkaClientError, Record, TopicPartition

log = logging.getLogger("pipeline.worker")

GAP_WORTH_A_LOOK = 2
"""A transaction's commit marker leaves a gap of one offset: that is never retention."""

Judge = Callable[[dict[TopicPartition, tuple[int, int]]], Awaitable[bool]]
"""Given partition → (expected offset, log start): whether the partition goes on."""
Deliver = Callable[[TopicPartition, Sequence[Record]], None]


class RetentionWatch:
    def __init__(self, consumer: Consumer, judge: Judge, deliver: Deliver) -> None:
        self._consumer = consumer
        self._judge = judge
        self._deliver = deliver
        self._next: dict[TopicPartition, int] = {}
        """The offset each partition's next record should have."""
        self._held: dict[TopicPartition, list[Sequence[Record]]] = {}
        self._checks: set[asyncio.Task[None]] = set()

    def starts_at(self, tp: TopicPartition, offset: int) -> None:
        """Where an assigned partition's records begin (its commit or the log start)."""
        self._next.setdefault(tp, offset)

    def forget(self, tp: TopicPartition) -> None:
        self._next.pop(tp, None)
        self._held.pop(tp, None)

    def admit(self, tp: TopicPartition, records: Sequence[Record]) -> bool:
        """Whether the records may go to the partition's worker now; False: held for a check."""
        held = self._held.get(tp)
        if held is not None:
            held.append(records)
            return False
        expected = self._next.get(tp)
        self._next[tp] = records[-1].offset + 1
        if expected is None or records[0].offset - expected < GAP_WORTH_A_LOOK:
            return True
        self._held[tp] = [records]
        check = asyncio.ensure_future(self._check(tp, expected))
        self._checks.add(check)
        check.add_done_callback(self._checks.discard)
        return False

    async def _check(self, tp: TopicPartition, expected: int) -> None:
        try:
            log_start = (await self._consumer.beginning_offsets([tp]))[tp]
        except (KafkaClientError, KeyError) as exc:
            log.warning(
                "%s-%d: records resumed after a gap at offset %d, and the log start could not "
                "be read to tell whether retention deleted them (%s); going on",
                tp.topic,
                tp.partition,
                expected,
                exc,
            )
            log_start = expected
        goes_on = log_start <= expected or await self._judge({tp: (expected, log_start)})
        held = self._held.pop(tp, [])
        if goes_on and tp in self._next:  # not revoked meanwhile
            for records in held:
                self._deliver(tp, records)

    async def close(self) -> None:
        for check in list(self._checks):
            check.cancel()
        await asyncio.gather(*self._checks, return_exceptions=True)
