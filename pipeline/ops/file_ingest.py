"""Publishing a JSON Lines file (or stdin) through a topic's event model.

Every line is validated before it can be published. A line that fails is
never dropped silently and never published: it is reported with its line
number, the field path and the reason, and kept in a rejects file that can
be fixed and fed back in.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import IO

from pydantic import BaseModel, ValidationError

from pipeline.catalogue import TopicSpec
from pipeline.errors import MissingKeyError
from pipeline.publishing.delivery import DeliveryList
from pipeline.publishing.producer import EventProducer
from pipeline.resilience.ratelimit import TokenBucket
from pipeline.wire.codec import event_key

CHUNK_EVENTS = 2000
# Chunks queued but not yet acknowledged: enough to keep the broker busy.
MAX_CHUNKS_IN_FLIGHT = 8


@dataclass(frozen=True)
class Reject:
    line: int
    field: str | None
    reason: str
    input: str

    def describe(self) -> str:
        where = f"line {self.line}"
        if self.field:
            where += f", field {self.field!r}"
        return f"{where}: {self.reason}"


@dataclass
class IngestSummary:
    lines: int = 0
    published: int = 0
    rejected: int = 0
    elapsed_s: float = 0.0

    @property
    def events_per_s(self) -> float:
        return self.published / self.elapsed_s if self.elapsed_s > 0 else 0.0


def parse_line(spec: TopicSpec[BaseModel], number: int, text: str) -> BaseModel | Reject:
    """One line to an event of the topic's model, or the reason it is not one."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return Reject(number, None, f"not valid JSON: {exc.msg} at column {exc.colno}", text)
    if not isinstance(data, dict):
        return Reject(number, None, f"expected a JSON object, got {type(data).__name__}", text)
    if data.get(spec.key_field) in (None, ""):
        return Reject(
            number,
            spec.key_field,
            f"missing key field {spec.key_field!r}: topic {spec.name!r} is keyed by it",
            text,
        )
    try:
        event = spec.event_model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        others = exc.error_count() - 1
        reason = first["msg"] + (f" (and {others} more problems)" if others else "")
        return Reject(number, field, reason, text)
    try:
        event_key(spec, event)
    except MissingKeyError as exc:
        return Reject(number, spec.key_field, str(exc), text)
    return event


async def publish_lines(
    producer: EventProducer,
    spec: TopicSpec[BaseModel],
    lines: Iterable[str],
    *,
    rejects: IO[str] | None = None,
    rate_per_s: float | None = None,
    on_progress: Callable[[IngestSummary, int], None] | None = None,
    on_reject: Callable[[Reject], None] | None = None,
) -> IngestSummary:
    """Validate and publish `lines`; returns counts once all are acknowledged.

    `on_progress(summary, bytes_read)` is called after each acknowledged chunk.
    Blank lines are skipped (they are not events and not errors).
    """
    summary = IngestSummary()
    bucket = TokenBucket(rate_per_s) if rate_per_s else None
    started = time.monotonic()
    chunk: list[BaseModel] = []
    bytes_read = 0
    chunk_size = CHUNK_EVENTS
    if rate_per_s:
        chunk_size = max(1, min(CHUNK_EVENTS, int(rate_per_s / 10)))

    in_flight: deque[asyncio.Future[DeliveryList]] = deque()

    async def settle(keep: int) -> None:
        while len(in_flight) > keep:
            summary.published += len(await in_flight.popleft())
            summary.elapsed_s = time.monotonic() - started
            if on_progress:
                on_progress(summary, bytes_read)

    async def flush() -> None:
        if not chunk:
            return
        if bucket is not None:
            await bucket.acquire(len(chunk))
        in_flight.append(await producer.submit_many(spec, chunk))
        chunk.clear()
        await settle(MAX_CHUNKS_IN_FLIGHT)

    for number, line in enumerate(lines, start=1):
        bytes_read += len(line.encode())
        summary.lines = number
        text = line.strip()
        if not text:
            continue
        parsed = parse_line(spec, number, text)
        if isinstance(parsed, Reject):
            summary.rejected += 1
            if rejects is not None:
                rejects.write(json.dumps(asdict(parsed)) + "\n")
            if on_reject:
                on_reject(parsed)
            continue
        chunk.append(parsed)
        if len(chunk) >= chunk_size:
            await flush()
    await flush()
    await settle(0)
    summary.elapsed_s = time.monotonic() - started
    if on_progress:
        on_progress(summary, bytes_read)
    return summary
