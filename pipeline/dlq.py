"""Dead-letter records and the flood guard.

A DLQ record is the original record, byte for byte (key, value, headers),
plus `dlq-*` headers that say what failed, where and how often, so that
`dlq inspect` can explain it and `dlq redrive` can put it back unchanged.
"""

from __future__ import annotations

import time
import traceback as traceback_module
from collections import deque
from dataclasses import dataclass

from pipeline.codec import HEADER_EVENT_ID, EncodedEvent, header_value, new_event_ids

TRACEBACK_LIMIT = 4000
MESSAGE_LIMIT = 1000


@dataclass(frozen=True)
class FailedRecord:
    """Everything the DLQ record needs about the source record and its failure."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    error: BaseException
    attempts: int
    first_failure_ms: int


def dlq_record(failed: FailedRecord, group: str, processor: str) -> EncodedEvent:
    trace = "".join(
        traceback_module.format_exception(
            type(failed.error), failed.error, failed.error.__traceback__
        )
    )
    if len(trace) > TRACEBACK_LIMIT:
        trace = "…" + trace[-TRACEBACK_LIMIT:]
    extra = [
        ("dlq-error-type", type(failed.error).__name__),
        ("dlq-error-message", str(failed.error)[:MESSAGE_LIMIT]),
        ("dlq-traceback", trace),
        ("dlq-source-topic", failed.topic),
        ("dlq-source-partition", str(failed.partition)),
        ("dlq-source-offset", str(failed.offset)),
        ("dlq-source-timestamp", str(failed.timestamp_ms)),
        ("dlq-group", group),
        ("dlq-processor", processor),
        ("dlq-attempts", str(failed.attempts)),
        ("dlq-first-failure-at", str(failed.first_failure_ms)),
    ]
    headers = list(failed.headers) + [(name, value.encode()) for name, value in extra]
    event_id = header_value(failed.headers, HEADER_EVENT_ID) or new_event_ids(1)[0]
    return EncodedEvent(failed.key or b"", failed.value or b"", headers, event_id)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class FloodGuard:
    """Trips when dead letters are more than `max_share` of the last ~`window` records.

    One bad record is input's fault; half of all records is a deploy's or a
    dependency's. Then dead-lettering would empty the topic into the DLQ, so
    the partition pauses instead and a person gets a loud log line.
    Successes arrive per batch, so the window is kept as runs of outcomes
    (count, dead?) and costs nothing per record.
    """

    def __init__(self, window: int = 200, max_share: float = 0.5, minimum: int = 50) -> None:
        self.window = window
        self.max_share = max_share
        self.minimum = minimum
        self._runs: deque[list[int | bool]] = deque()
        self._total = 0
        self._dead = 0

    def _add(self, count: int, dead: bool) -> None:
        if count <= 0:
            return
        if self._runs and self._runs[-1][1] is dead:
            self._runs[-1][0] += count
        else:
            self._runs.append([count, dead])
        self._total += count
        self._dead += count if dead else 0
        while self._total > self.window:
            run = self._runs[0]
            drop = min(int(run[0]), self._total - self.window)
            run[0] = int(run[0]) - drop
            self._total -= drop
            if run[1]:
                self._dead -= drop
            if run[0] == 0:
                self._runs.popleft()

    def record(self, dead_lettered: bool) -> None:
        self._add(1, dead_lettered)

    def record_ok(self, count: int) -> None:
        self._add(count, False)

    @property
    def share(self) -> float:
        return self._dead / self._total if self._total else 0.0

    def tripped_by_one_more(self) -> bool:
        """Would dead-lettering one more record put the share over the limit?"""
        total = min(self._total + 1, self.window)
        if total < self.minimum:
            return False
        dead = self._dead + 1
        if self._total + 1 > self.window and self._runs and self._runs[0][1]:
            dead -= 1  # the oldest outcome, a dead letter, would leave the window
        return dead / total > self.max_share

    def reset(self) -> None:
        self._runs.clear()
        self._total = 0
        self._dead = 0
