"""What only the workers know (held records, restorations, breakers), read from their /metrics.

The brokers know offsets; a worker's bulkheads and circuits live in its
process. `pipeline console --metrics URL` names the workers to ask; each
says who it is (`pipeline_worker_info`: processor, replica, group), so its
figures land on its group's page.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

SCRAPE_TIMEOUT_S = 2.0
BREAKER_STATES = {0: "closed", 1: "half-open", 2: "open"}


@dataclass
class WorkerReading:
    url: str
    group: str | None = None
    replica: str | None = None
    processor: str | None = None
    held_records: float | None = None
    queued: dict[tuple[str, int], float] = field(default_factory=dict)
    """(topic, partition) → records in that partition's bulkhead."""
    restoring: dict[tuple[str, int], float] = field(default_factory=dict)
    """(topic, partition) → changelog records it still reads back before its first record."""
    standby_partitions: float | None = None
    """Other replicas' partitions it keeps warm copies of (Processor standbys)."""
    breakers: dict[str, str] = field(default_factory=dict)
    ready: bool | None = None
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "url": self.url,
            "group": self.group,
            "replica": self.replica,
            "processor": self.processor,
            "held_records": self.held_records,
            "queued": [[t, p, n] for (t, p), n in sorted(self.queued.items())],
            "restoring": [[t, p, n] for (t, p), n in sorted(self.restoring.items())],
            "standby_partitions": self.standby_partitions,
            "breakers": self.breakers,
            "ready": self.ready,
            "error": self.error,
        }


def read_exposition(url: str, text: str) -> WorkerReading:
    reading = WorkerReading(url)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "pipeline_worker_info":
                reading.group = labels.get("group")
                reading.replica = labels.get("replica")
                reading.processor = labels.get("processor")
            elif sample.name == "pipeline_held_records":
                reading.held_records = sample.value
            elif sample.name == "pipeline_partition_queued_records":
                reading.queued[(labels["topic"], int(labels["partition"]))] = sample.value
            elif sample.name == "pipeline_partition_restore_remaining_records":
                if sample.value > 0:
                    reading.restoring[(labels["topic"], int(labels["partition"]))] = sample.value
            elif sample.name == "pipeline_standby_partitions":
                reading.standby_partitions = sample.value
            elif sample.name == "pipeline_breaker_state":
                state = BREAKER_STATES.get(int(sample.value), str(sample.value))
                reading.breakers[labels.get("dependency", "?")] = state
            elif sample.name == "pipeline_ready":
                reading.ready = sample.value >= 1
    return reading


async def scrape_workers(urls: list[str]) -> list[WorkerReading]:
    """Every worker's reading; one that does not answer says why instead."""
    if not urls:
        return []
    async with httpx.AsyncClient(timeout=SCRAPE_TIMEOUT_S) as client:

        async def one(url: str) -> WorkerReading:
            try:
                reply = await client.get(url)
                reply.raise_for_status()
            except httpx.HTTPError as exc:
                return WorkerReading(url, error=f"{type(exc).__name__}: {exc}")
            return read_exposition(url, reply.text)

        return list(await asyncio.gather(*(one(url) for url in urls)))
