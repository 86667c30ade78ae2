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
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from pipeline.catalogue import TopicSpec
from pipeline.errors import EventDecodeError, PipelineError
from pipeline.kafka.metadata import TopicNotOnClusterError
from pipeline.kafka.port import Clients, Consumer, ConsumerOptions, TopicPartition
from pipeline.metrics import Metrics
from pipeline.resilience.breaker import CircuitBreaker
from pipeline.resilience.tasks import CANCEL_WAIT_S, cancel_and_wait
from pipeline.stores.cache import LocalCache
from pipeline.stores.db import Database
from pipeline.wire.codec import decode_value
from pipeline.wire.versions import version_in

log = logging.getLogger("pipeline.table")


class LoaderServices(Protocol):
    """What a table's loader or a sink's writer may use of its replica: its database pool.

    A Protocol, so that a loader or writer typed with it is tested with any
    object that has a `db` (pipeline.stores.services provides the real one).
    """

    @property
    def db(self) -> Database:
        """The replica's PostgreSQL pool; the processor must declare `database=True`."""


RowT_co = TypeVar("RowT_co", bound=BaseModel, covariant=True)
RowT = TypeVar("RowT", bound=BaseModel)

Loader = Callable[[str, LoaderServices], Awaitable[RowT_co | None]]


@dataclass(frozen=True)
class Table(Generic[RowT_co]):
    """A processor's declaration: materialise `topic`, look keys up with `ctx.table(table)`."""

    name: str
    topic: TopicSpec[RowT_co]
    loader: Loader[RowT_co] | None = None
    """Called for keys the table lacks; its answer is cached for `loader_ttl_s`."""
    loader_dependency: str = "postgres"
    """The breaker the loader's calls go through."""
    loader_ttl_s: float = 300.0
    max_entries: int | None = 2_000_000

    def with_prefix(self, prefix: str) -> Table[RowT_co]:
        from dataclasses import replace

        return replace(self, topic=self.topic.with_name(prefix + self.topic.name))


class TableFollower:
    """Reads a compacted topic from the beginning into a cache, then keeps following it."""

    def __init__(
        self,
        table: Table[BaseModel],
        clients: Clients,
        cache: LocalCache,
        metrics: Metrics,
        on_failure: Callable[[str], None] = lambda _reason: None,
    ) -> None:
        self.table = table
        self._on_failure = on_failure
        self.cache = cache
        self._clients = clients
        self._metrics = metrics
        self._targets: dict[TopicPartition, int] = {}
        self.caught_up = asyncio.Event()
        self._consumer: Consumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.records_applied = 0

    async def start(self) -> None:
        topic = self.table.topic.name
        consumer = self._clients.consumer(
            ConsumerOptions(start="earliest", isolation="read_committed")
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

    def position(self, partition: TopicPartition) -> int | None:
        """The next offset this follower reads in `partition`: all before it is in the cache."""
        return None if self._consumer is None else self._consumer.known_position(partition)

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
            batches = await consumer.fetch((), 0.5, 10_000)
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
                        version = version_in(spec, record.headers, record.partition, record.offset)
                        event = decode_value(
                            spec,
                            record.value,
                            partition=record.partition,
                            offset=record.offset,
                            version=version,
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


async def _partitions(consumer: Consumer, topic: str) -> list[int]:
    try:
        count = await consumer.partition_count(topic)
    except TopicNotOnClusterError:
        raise PipelineError(
            f"table topic {topic!r} does not exist on the cluster; run `pipeline topics apply`"
        ) from None
    return list(range(count))


class TableView(Generic[RowT]):
    """What a handler uses: `await ctx.table(CUSTOMERS_TABLE).get(customer_id)`."""

    def __init__(
        self,
        table: Table[RowT],
        cache: LocalCache,
        breaker: CircuitBreaker,
        services: LoaderServices,
    ) -> None:
        self.table = table
        self.cache = cache
        self._breaker = breaker
        self._services = services
        """What the loader is given; its pool is open before the first lookup."""

    async def get(self, key: str) -> RowT | None:
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

    async def _load(self, loader: Loader[RowT], key: str) -> dict[str, Any] | None:
        services = self._services

        async def call() -> RowT | None:
            return await loader(key, services)

        found = await self._breaker.call(call)
        return None if found is None else found.model_dump(mode="json")
