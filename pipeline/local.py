"""The local harness: what a script that runs a whole pipeline on one machine needs.

`from pipeline import …` is what an application imports. A demo, a load
generator or a project's own integration test needs a little more: a
private Kafka and PostgreSQL, replicas as real processes, the topics and
migrations applied, and a look at offsets, lag and what a topic holds.
Those are here, named in `__all__` and documented in the API reference, so
such a script never reaches into the internal modules (which may change).
The example's `make demo` uses nothing else.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

from pydantic import BaseModel

from pipeline.catalogue import Catalogue, TopicSpec
from pipeline.cli.common import settings_for_cli as local_settings
from pipeline.dev.localkafka import ephemeral_kafka as local_kafka
from pipeline.dev.localpg import ephemeral_postgres as local_postgres
from pipeline.dev.processes import free_ports
from pipeline.kafka.connect import connect
from pipeline.kafka.port import Clients, Consumer, ConsumerOptions, TopicPartition
from pipeline.ops.topics import ensure_topics
from pipeline.reading.reader import read_all
from pipeline.resilience.ratelimit import TokenBucket
from pipeline.scaling.lag import LagMonitor
from pipeline.scaling.worker_process import PIPELINE, WorkerProcess
from pipeline.settings import DatabaseTuning, PipelineSettings
from pipeline.stores.migrations import migrate
from pipeline.wire.codec import decode_value
from pipeline.wire.registry import configure_registry

__all__ = [
    "PIPELINE",
    "ClusterProbe",
    "TokenBucket",
    "WorkerProcess",
    "apply_migrations",
    "free_ports",
    "local_kafka",
    "local_postgres",
    "local_settings",
]


async def apply_migrations(database_url: str, directory: Path | None = None) -> int:
    """`pipeline db migrate` from a script; the number of migrations applied now.

    The directory defaults to the setting `pipeline db migrate` reads, so a
    script and the command never disagree about which SQL belongs to the app.
    """
    report = await migrate(database_url, directory or DatabaseTuning().migrations_dir)
    return len(report.applied)


class ClusterProbe:
    """One set of long-lived clients for looking at a cluster while a pipeline runs.

    A live view refreshed every second would otherwise open and close a
    consumer per question; a probe keeps them, and answers in the terms an
    operator uses (`pipeline lag`, `pipeline topics describe`).

        async with ClusterProbe(settings) as probe:
            await probe.apply_topics(catalogue)
            lag = await probe.lag("enrich_orders", "orders")
    """

    def __init__(self, settings: PipelineSettings) -> None:
        self.settings = settings
        configure_registry(settings.schema_registry)  # avro topics' events are read too
        self._clients: Clients = connect(settings)
        self._monitors: dict[tuple[str, str], LagMonitor] = {}
        self._consumer: Consumer | None = None

    async def __aenter__(self) -> ClusterProbe:
        self._consumer = self._clients.consumer(ConsumerOptions())
        await self._consumer.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for monitor in self._monitors.values():
            await monitor.stop()
        self._monitors.clear()
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def apply_topics(self, catalogue: Catalogue) -> None:
        """`pipeline topics apply`: every topic of the catalogue and its dead-letter topic."""
        await ensure_topics(self._clients, catalogue.with_dlqs())

    async def end_offsets(self, topic: str) -> dict[int, int]:
        """Partition → the offset the next record will get: how many records it has held."""
        consumer = self._started()
        count = await consumer.partition_count(topic)
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(count)])
        return {tp.partition: offset for tp, offset in ends.items()}

    async def lag(self, group: str, topic: str) -> dict[int, int]:
        """Partition → records of `topic` that `group` has not committed yet."""
        monitor = self._monitors.get((group, topic))
        if monitor is None:
            monitor = await LagMonitor(self._clients, group, topic, measure_age=False).start()
            self._monitors[(group, topic)] = monitor
        sample = await monitor.sample()
        return {p.partition: p.lag for p in sample.partitions}

    async def read_events(self, spec: TopicSpec[Any], timeout_s: float = 60.0) -> list[BaseModel]:
        """Every event the topic holds now, decoded with its model, in partition order."""
        records = await read_all(self._clients, spec.name, timeout_s=timeout_s)
        return [decode_value(spec, record.value, key=record.key) for record in records]

    def _started(self) -> Consumer:
        if self._consumer is None:
            raise RuntimeError("use the probe as `async with ClusterProbe(settings) as probe:`")
        return self._consumer
