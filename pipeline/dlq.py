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
    """Trips when dead letters are more than `max_share` of the last `window` outcomes.

    One bad record is input's fault; half of all records is a deploy's or a
    dependency's. Then dead-lettering would empty the topic into the DLQ, so
    the partition pauses instead and a person gets a loud log line.
    """

    def __init__(self, window: int = 200, max_share: float = 0.5, minimum: int = 50) -> None:
        self.max_share = max_share
        self.minimum = minimum
        self._outcomes: deque[bool] = deque(maxlen=window)
        self._dead = 0

    def record(self, dead_lettered: bool) -> None:
        if len(self._outcomes) == self._outcomes.maxlen and self._outcomes[0]:
            self._dead -= 1
        self._outcomes.append(dead_lettered)
        if dead_lettered:
            self._dead += 1

    def record_many(self, ok_count: int) -> None:
        for _ in range(min(ok_count, self._outcomes.maxlen or ok_count)):
            self.record(False)

    @property
    def share(self) -> float:
        return self._dead / len(self._outcomes) if self._outcomes else 0.0

    def tripped_by_one_more(self) -> bool:
        """Would dead-lettering one more record put the share over the limit?"""
        count = min(len(self._outcomes) + 1, self._outcomes.maxlen or 0)
        if count < self.minimum:
            return False
        dead = (
            self._dead
            + 1
            - (1 if len(self._outcomes) == self._outcomes.maxlen and self._outcomes[0] else 0)
        )
        return dead / count > self.max_share

    def reset(self) -> None:
        self._outcomes.clear()
        self._dead = 0
