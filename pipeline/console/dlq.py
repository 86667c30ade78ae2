"""Dead letters in the console: what is there, why, and a redrive that shows itself first.

A redrive is previewed (the same plan `pipeline dlq redrive --dry-run`
prints) and confirmed with a token naming exactly what the preview showed:
when dead letters arrived or another redrive ran in between, the token no
longer matches and nothing is sent, so a confirmation never sends more
than the operator saw.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass

from pipeline.errors import PipelineError
from pipeline.kafka.port import Clients
from pipeline.ops.dlq_tools import DlqEntry, RedrivePlan, plan_redrive
from pipeline.ops.offset_ranges import EmptyRangeError, resolve_ranges
from pipeline.reading.reader import read_ranges

RECENT_RECORDS = 500
MAX_REDRIVES = 3


@dataclass(frozen=True)
class DlqPage:
    topic: str
    entries: list[DlqEntry]
    """The newest records, at most RECENT_RECORDS per partition, newest first."""
    by_cause: list[tuple[str, str, int]]
    """(error type, processor, count) over `entries`."""


async def recent(clients: Clients, topic: str, limit: int = RECENT_RECORDS) -> DlqPage:
    if not topic.endswith(".dlq"):
        raise PipelineError(f"{topic!r} is not a dead-letter topic (they end in .dlq)")
    try:
        ranges = await resolve_ranges(clients, topic, None, None)
    except EmptyRangeError:
        return DlqPage(topic, [], [])
    bounds = {r.partition: (max(r.start, r.end - limit), r.end) for r in ranges if r.size}
    records = await read_ranges(clients, topic, bounds)
    entries = sorted(
        (DlqEntry(record) for record in records),
        key=lambda e: e.record.timestamp,
        reverse=True,
    )
    causes = Counter((e.error_type, e.processor) for e in entries)
    return DlqPage(topic, entries, [(err, proc, n) for (err, proc), n in causes.most_common()])


async def one_record(clients: Clients, topic: str, partition: int, offset: int) -> DlqEntry:
    try:
        held = {
            r.partition: (r.start, r.end) for r in await resolve_ranges(clients, topic, None, None)
        }
    except EmptyRangeError:
        held = {}
    start, end = held.get(partition, (0, 0))
    if not start <= offset < end:
        kept = f"it holds offsets {start}..{end - 1}" if end > start else "it holds none"
        raise PipelineError(
            f"no record at {topic}-{partition}@{offset}: {kept} "
            "(retention deleted older ones; newer ones are not written yet)"
        )
    records = await read_ranges(clients, topic, {partition: (offset, offset + 1)}, timeout_s=10)
    return DlqEntry(records[0])


async def preview(clients: Clients, topic: str, error_type: str | None) -> RedrivePlan:
    """What a redrive would send now; nothing changes."""
    return await plan_redrive(clients, topic, None, error_type or None, MAX_REDRIVES)


def plan_token(plan: RedrivePlan, error_type: str | None) -> str:
    """Names the records the plan covers: the same ranges and filter give the same token."""
    named = json.dumps(
        {
            "topic": plan.dlq_topic,
            "error_type": error_type or None,
            "ranges": sorted(plan.ranges.items()),
            "send": [e.where() for e in plan.to_send],
        }
    )
    return hashlib.sha256(named.encode()).hexdigest()[:32]
