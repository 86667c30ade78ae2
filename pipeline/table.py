"""A compacted topic materialised into a replica's local cache.

Each replica reads the whole topic (every partition, from the beginning)
into its own RocksDB cache and keeps following it, so lookups are local
and need no group coordination. Processing starts only once the table has
caught up with the end offsets seen at start, so the first events are not
enriched from an empty table. A key the table does not have falls back to
the table's loader (typically PostgreSQL, the system of record), whose
answer is cached with a TTL.

Known limit: the cache survives restarts, and a key deleted (tombstoned)
while a replica was down, with the tombstone compacted away before it
restarts, stays in that replica's cache until evicted. Delete the cache
directory to rebuild from scratch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import BaseModel

from pipeline.breaker import CircuitBreaker
from pipeline.cache import LocalCache
from pipeline.catalogue import TopicSpec
from pipeline.codec import decode_value
from pipeline.errors import EventDecodeError, PipelineError
from pipeline.metrics import Metrics
from pipeline.process_runner import CANCEL_WAIT_S, cancel_and_wait
from pipeline.settings import PipelineSettings
from pipeline.topic_metadata import TopicNotOnClusterError, partition_count

if TYPE_CHECKING:
    from pipeline.services import Services

log = logging.getLogger("pipeline.table")

Loader = Callable[[str, "Services"], Awaitable[BaseModel | None]]


@dataclass(frozen=True)
class Table:
    """A processor's declaration: materialise `topic` and look keys up with `ctx.table(name)`."""

    name: str
    topic: TopicSpec
    loader: Loader | None = None
    """Called for keys the table lacks; its answer is cached for `loader_ttl_s`."""
    loader_dependency: str = "postgres"
    """The breaker the loader's calls go through."""
    loader_ttl_s: float = 300.0
    max_entries: int | None = 2_000_000

    def with_prefix(self, prefix: str) -> Table:
        from dataclasses import replace

        return replace(self, topic=self.topic.with_name(prefix + self.topic.name))


class TableFollower:
    """Reads a compacted topic from the beginning into a cache, then keeps following it."""

    def __init__(
        self,
        table: Table,
        settings: PipelineSettings,
        cache: LocalCache,
        metrics: Metrics,
        on_failure: Callable[[str], None] = lambda _reason: None,
    ) -> None:
        self.table = table
        self._on_failure = on_failure
        self.cache = cache
        self._settings = settings
        self._metrics = metrics
        self._targets: dict[TopicPartition, int] = {}
        self.caught_up = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.records_applied = 0

    async def start(self) -> None:
        topic = self.table.topic.name
        consumer = AIOKafkaConsumer(
            **self._settings.client_kwargs(),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        await consumer.start()
        self._consumer = consumer
        partitions = await _partitions(consumer, topic)
        tps = [TopicPartition(topic, partition) for partition in partitions]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        beginnings = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        self._targets = {tp: ends[tp] for tp in tps if ends[tp] > beginnings[tp]}
        if not self._targets:
            self.caught_up.set()
        log.info(
            "table %s: reading %s (%d records up to the end offsets seen at start)",
            self.table.name,
            topic,
            sum(ends[tp] - beginnings[tp] for tp in tps),
        )
        self._task = asyncio.ensure_future(self._follow())
        self._task.add_done_callback(self._stopped)

    def _stopped(self, task: asyncio.Task[None]) -> None:
        """A follower that dies leaves a stale table: say so loudly and fail the worker."""
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.error(
                "table %s stopped following %s: %s: %s",
                self.table.name,
                self.table.topic.name,
                type(error).__name__,
                error,
                exc_info=error,
            )
            self._on_failure(f"table {self.table.name} stopped following its topic: {error}")

    async def wait_caught_up(self, timeout_s: float) -> None:
        started = time.monotonic()
        waiter = asyncio.ensure_future(self.caught_up.wait())
        assert self._task is not None
        done, _ = await asyncio.wait(
            [waiter, self._task], timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        waiter.cancel()
        if self._task in done:
            self._task.result()  # the follower failed: raise its error
        if not self.caught_up.is_set():
            raise PipelineError(
                f"table {self.table.name}: not caught up with {self.table.topic.name} after "
                f"{timeout_s:.0f}s ({self.records_applied} records applied); is the broker slow, "
                "or is the topic far larger than expected?"
            )
        log.info(
            "table %s caught up: %d records in %.1fs",
            self.table.name,
            self.records_applied,
            time.monotonic() - started,
        )

    async def _follow(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        spec = self.table.topic
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for records in batches.values():
                upserts: list[tuple[str | bytes, Any]] = []
                for record in records:
                    key = record.key or b""
                    if record.value is None:
                        self.cache.put_many(upserts)
                        upserts = []
                        self.cache.delete(key)
                        continue
                    try:
                        event = decode_value(
                            spec, record.value, partition=record.partition, offset=record.offset
                        )
                    except EventDecodeError as exc:
                        log.warning("table %s: skipping a record: %s", self.table.name, exc)
                        self._metrics.inc("table_invalid_records", labels={"table": spec.name})
                        continue
                    upserts.append((key, event.model_dump(mode="json")))
                self.cache.put_many(upserts)
                self.records_applied += len(records)
                self._metrics.inc("table_records", len(records), labels={"table": spec.name})
            if not self.caught_up.is_set():
                # position() is cheap here: every partition is assigned and fetched.
                positions = [await consumer.position(tp) for tp in self._targets]
                if all(p >= end for p, end in zip(positions, self._targets.values(), strict=True)):
                    self.caught_up.set()

    async def stop(self) -> None:
        if self._task is not None:
            # A failure was reported by _stopped already.
            await cancel_and_wait(self._task, CANCEL_WAIT_S, f"table {self.table.name}'s follower")
        if self._consumer is not None:
            await self._consumer.stop()
        self.cache.close()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[int]:
    try:
        count = await partition_count(consumer._client, topic)
    except TopicNotOnClusterError:
        raise PipelineError(
            f"table topic {topic!r} does not exist on the cluster; run `pipeline topics apply`"
        ) from None
    return list(range(count))


class TableView:
    """What a handler uses: `await ctx.table("customers").get(customer_id)`."""

    def __init__(self, table: Table, cache: LocalCache, breaker: CircuitBreaker) -> None:
        self.table = table
        self.cache = cache
        self._breaker = breaker
        self.services: Services | None = None

    async def get(self, key: str) -> BaseModel | None:
        """The table's value for `key`, else the loader's (cached), else None.

        A failing loader raises DependencyError/DependencyUnavailable: the
        event is retried, never dead-lettered for it.
        """
        model = self.table.topic.event_model
        loader = self.table.loader
        if loader is None:
            fields = self.cache.get(key)
        else:
            fields = await self.cache.get_or_load(
                key, lambda: self._load(loader, key), self.table.loader_ttl_s
            )
        return None if fields is None else model.model_validate(fields)

    async def _load(self, loader: Loader, key: str) -> dict[str, Any] | None:
        services = self.services
        assert services is not None

        async def call() -> BaseModel | None:
            return await loader(key, services)

        found = await self._breaker.call(call)
        return None if found is None else found.model_dump(mode="json")
