"""Looking into dead-letter topics, and sending their records back where they came from.

Redrive republishes a DLQ record's original key, value and headers to the
topic named in its `dlq-source-topic` header, with `redrive-count` raised
by one. What it has redriven is tracked in its own consumer group
(`dlq-redrive.<dlq topic>`, plus `.<error type>` when filtered), so running
it twice redrives nothing twice. A record that has come back more than
`max_redrives` times is left where it is and reported: a fix that did not
work must not loop forever. Nothing in the DLQ is ever deleted.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import msgpack

from pipeline.errors import ConfigError, PipelineError
from pipeline.kafka.metadata import TopicNotOnClusterError
from pipeline.kafka.port import Clients, ConsumerOptions, Record, TopicPartition
from pipeline.ops.offset_ranges import EmptyRangeError, resolve_ranges
from pipeline.publishing.producer import EventProducer
from pipeline.reading.offsets import committed_offsets
from pipeline.reading.reader import read_ranges
from pipeline.resilience.ratelimit import TokenBucket
from pipeline.settings import PipelineSettings
from pipeline.wire import dlq_headers as dlq
from pipeline.wire.avro_body import framed_avro_for_people
from pipeline.wire.codec import EncodedEvent, header_value, record_copy
from pipeline.wire.dlq_headers import VALUE_OMITTED

REDRIVE_COUNT = "redrive-count"
REDRIVE_CHUNK = 500
SOURCE_HEADERS = (dlq.SOURCE_TOPIC, dlq.SOURCE_PARTITION, dlq.SOURCE_OFFSET)


@dataclass(frozen=True)
class DlqEntry:
    record: Record

    def header(self, name: str) -> str | None:
        return header_value(self.record.headers, name)

    @property
    def error_type(self) -> str:
        return self.header(dlq.ERROR_TYPE) or "unknown"

    @property
    def processor(self) -> str:
        return self.header(dlq.PROCESSOR) or "unknown"

    @property
    def redrives(self) -> int:
        count = self.header(REDRIVE_COUNT)
        return int(count) if count and count.isdigit() else 0

    @property
    def missing(self) -> list[str]:
        """What a lossless redrive needs and this record lacks."""
        lacking = [name for name in SOURCE_HEADERS if not self.header(name)]
        if self.header(VALUE_OMITTED):
            lacking.append(f"its value ({VALUE_OMITTED}: over the DLQ topic's limit)")
        return lacking

    def where(self) -> str:
        return f"{self.record.topic}-{self.record.partition}@{self.record.offset}"

    def decoded_value(self) -> object:
        """The original value as the registry's Avro, msgpack or JSON decodes it, or its bytes.

        The DLQ does not know its source topic's format, and a record may be
        there precisely because it was in the wrong one, so both are tried.
        """
        value = self.record.value
        if value is None:
            return None
        framed = framed_avro_for_people(value)
        if framed is not None:
            return framed
        # Neither failing is news: the reason it is in the DLQ may be exactly this.
        with contextlib.suppress(Exception):  # msgpack raises several unrelated types
            return msgpack.unpackb(value, raw=False)
        with contextlib.suppress(ValueError):  # JSONDecodeError, UnicodeDecodeError
            return json.loads(value)
        return repr(value[:200])

    def to_json(self) -> dict[str, object]:
        return {
            "dlq": self.where(),
            "key": None if self.record.key is None else self.record.key.decode(errors="replace"),
            "value": self.decoded_value(),
            "headers": {
                name: None if value is None else value.decode(errors="replace")
                for name, value in self.record.headers
            },
        }

    def redriven(self) -> EncodedEvent:
        """The original record with redrive-count + 1 and without the dlq-* headers.

        Null stays null; a keyless record goes back to the partition it came from.
        """
        headers: list[tuple[str, bytes | None]] = [
            (name, value)
            for name, value in self.record.headers
            if not name.startswith(dlq.PREFIX) and name != REDRIVE_COUNT
        ]
        headers.append((REDRIVE_COUNT, str(self.redrives + 1).encode()))
        return record_copy(
            self.record.key,
            self.record.value,
            headers,
            self.header(dlq.SOURCE_TOPIC) or self.record.topic,
            _number(self.header(dlq.SOURCE_PARTITION), self.record.partition),
            _number(self.header(dlq.SOURCE_OFFSET), -1),
        )


async def _dlq_ranges(
    clients: Clients, topic: str, since: datetime | None, group: str | None
) -> dict[int, tuple[int, int]]:
    """Per partition, [since or committed progress, end) of the DLQ topic."""
    try:
        ranges = await resolve_ranges(clients, topic, since, None)
    except EmptyRangeError:
        return {}
    bounds = {r.partition: (r.start, r.end) for r in ranges}
    if group is not None:
        for partition, offset in (await committed_offsets(clients, group, topic)).items():
            if partition in bounds:
                start, end = bounds[partition]
                bounds[partition] = (max(start, offset), end)
    return bounds


async def read_entries(
    clients: Clients,
    topic: str,
    since: datetime | None = None,
    error_type: str | None = None,
    group: str | None = None,
) -> tuple[list[DlqEntry], dict[int, tuple[int, int]]]:
    if not topic.endswith(".dlq"):
        raise ConfigError(f"{topic!r} is not a dead-letter topic (they end in .dlq)")
    ranges = await _dlq_ranges(clients, topic, since, group)
    records = await read_ranges(clients, topic, ranges)
    entries = [DlqEntry(r) for r in records]
    if error_type:
        entries = [e for e in entries if e.error_type == error_type]
    return entries, ranges


@dataclass
class Summary:
    total: int
    by_cause: list[tuple[str, str, int]]
    samples: list[DlqEntry]


def summarize(entries: list[DlqEntry], limit: int) -> Summary:
    causes = Counter((e.error_type, e.processor) for e in entries)
    return Summary(
        total=len(entries),
        by_cause=[(error, proc, count) for (error, proc), count in causes.most_common()],
        samples=entries[:limit],
    )


def redrive_group(dlq_topic: str, error_type: str | None) -> str:
    return f"dlq-redrive.{dlq_topic}" + (f".{error_type}" if error_type else "")


@dataclass
class RedrivePlan:
    dlq_topic: str
    group: str
    ranges: dict[int, tuple[int, int]]
    to_send: list[DlqEntry] = field(default_factory=list)
    too_often: list[DlqEntry] = field(default_factory=list)


async def plan_redrive(
    clients: Clients,
    dlq_topic: str,
    since: datetime | None,
    error_type: str | None,
    max_redrives: int,
) -> RedrivePlan:
    """What a redrive would send; refuses (changing nothing) when a record lacks its source."""
    group = redrive_group(dlq_topic, error_type)
    entries, ranges = await read_entries(clients, dlq_topic, since, error_type, group)
    broken = [e for e in entries if e.missing]
    if broken:
        listed = "; ".join(f"{e.where()} lacks {', '.join(e.missing)}" for e in broken[:10])
        raise PipelineError(
            f"{len(broken)} DLQ record(s) cannot be redriven as they were ({listed}); "
            "nothing was redriven. Publish those by hand (a left-out value is still in the "
            "source topic at dlq-source-offset while its retention keeps it), or narrow the "
            "redrive with --error-type or --since"
        )
    plan = RedrivePlan(dlq_topic, group, ranges)
    for entry in entries:
        (plan.too_often if entry.redrives >= max_redrives else plan.to_send).append(entry)
    for source in {e.header(dlq.SOURCE_TOPIC) or "" for e in plan.to_send}:
        consumer = clients.consumer(ConsumerOptions())
        await consumer.start()
        try:
            await consumer.partition_count(source, 5)
        except TopicNotOnClusterError:
            raise PipelineError(
                f"DLQ records name source topic {source!r}, which does not exist; "
                "nothing was redriven"
            ) from None
        finally:
            await consumer.stop()
    return plan


async def redrive(
    settings: PipelineSettings, clients: Clients, plan: RedrivePlan, rate: float | None
) -> int:
    """Publish the plan's records to their sources, then commit the group past the range."""
    bucket = TokenBucket(rate) if rate else None
    by_source: dict[str, list[EncodedEvent]] = {}
    for entry in plan.to_send:
        source = entry.header(dlq.SOURCE_TOPIC)
        assert source is not None  # plan_redrive refused records without one
        by_source.setdefault(source, []).append(entry.redriven())
    sent = 0
    async with EventProducer(settings, clients=clients) as producer:
        pending = []
        for source, records in by_source.items():
            for start in range(0, len(records), REDRIVE_CHUNK):
                chunk = records[start : start + REDRIVE_CHUNK]
                if bucket is not None:
                    await bucket.acquire(len(chunk))
                pending.append(await producer.submit_encoded(source, chunk))
                sent += len(chunk)
        for future in pending:
            await future
    consumer = clients.consumer(ConsumerOptions(group_id=plan.group))
    await consumer.start()
    try:
        tps = {TopicPartition(plan.dlq_topic, p): end for p, (_, end) in plan.ranges.items()}
        if tps:
            consumer.assign(list(tps))
            await consumer.commit(tps)
    finally:
        await consumer.stop()
    return sent


def _number(text: str | None, default: int) -> int:
    return int(text) if text and text.isdigit() else default
