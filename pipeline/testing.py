"""Test a processor without Kafka: the real worker runtime on an in-memory broker.

    async def test_enrich() -> None:
        async with TestPipeline(ENRICH_ORDERS, database=False) as pipeline:
            await pipeline.publish(CUSTOMERS, [customer])
            await pipeline.publish(ORDERS, [order])
            await pipeline.processed()
            [enriched] = pipeline.outputs(ORDERS_ENRICHED)
            assert pipeline.dead_letters() == []

Everything between the topics is the code a `pipeline worker` replica runs
(bulkheads, lanes, retries, dead letters, commits, tables); only the
broker is pipeline.kafka.memory, kept honest by the contract suite
(tests/contract) that runs the same tests on it and on Kafka. What the
harness adds is waiting on outcomes instead of sleeping: `processed()`
returns once the group has committed everything published so far.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, NamedTuple, TypeVar, cast

from pydantic import BaseModel

from pipeline.catalogue import TopicSpec
from pipeline.errors import PipelineError
from pipeline.kafka.memory import MemoryBroker, MemoryClients
from pipeline.kafka.port import Headers, Record, TopicPartition
from pipeline.metrics import Metrics
from pipeline.processor import EventT, Processor
from pipeline.publishing.delivery import Delivery
from pipeline.publishing.producer import EventProducer
from pipeline.resilience.retry import RetryPolicy
from pipeline.runtime.replicas import Replica, open_worker
from pipeline.runtime.worker import EXIT_OK, WorkerOptions
from pipeline.settings import PipelineSettings
from pipeline.stores.table import Loader, TableFollower
from pipeline.wire import dlq_headers as dlq
from pipeline.wire.codec import decode_value, header_value

ModelT = TypeVar("ModelT", bound=BaseModel)

FAST_RETRY = RetryPolicy(attempts=3, base_delay_s=0.001, max_delay_s=0.01)
"""Retries that take milliseconds: a test wants the dead letter, not the backoff."""
POLL_S = 0.005


class DeadLetter(NamedTuple):
    """A record the processor gave up on, and why (the dlq-* headers)."""

    source_offset: int
    source_partition: int
    error_type: str
    error_message: str
    attempts: int
    key: bytes | None
    value: bytes | None


class TestPipeline(Generic[EventT]):
    """One processor, one worker replica, an in-memory broker holding every topic it uses.

    `database=False` runs a processor that declares `database=True` without
    a PostgreSQL pool (its handlers must then not use `ctx.db`);
    `loaders` replaces table loaders by table name, for keys a test leaves
    out of a table's topic. Retries are fast (FAST_RETRY) unless the
    processor's are given with `keep_retry=True`.
    """

    __test__ = False  # not a pytest test class, whatever the name says

    def __init__(
        self,
        processor: Processor[EventT],
        *,
        database: bool | None = None,
        loaders: dict[str, Loader[BaseModel]] | None = None,
        keep_retry: bool = False,
        broker: MemoryBroker | None = None,
        settings: PipelineSettings | None = None,
        state_dir: Path | None = None,
    ) -> None:
        changes: dict[str, Any] = {}
        if database is not None:
            changes["database"] = database
        if not keep_retry:
            changes["retry"] = FAST_RETRY
        if loaders:
            unknown = set(loaders) - {table.name for table in processor.tables}
            if unknown:
                raise PipelineError(
                    f"loaders for {sorted(unknown)}: processor {processor.name!r} has no such "
                    f"table (its tables: {[t.name for t in processor.tables]})"
                )
            changes["tables"] = tuple(
                dataclasses.replace(table, loader=loaders[table.name])
                if table.name in loaders
                else table
                for table in processor.tables
            )
        self.processor = dataclasses.replace(processor, **changes)
        self.broker = broker or MemoryBroker()
        self.clients = MemoryClients(self.broker)
        self.settings = settings or PipelineSettings(bootstrap_servers=self.clients.bootstrap)
        self._state = tempfile.TemporaryDirectory(prefix="pipeline-test-")
        self.state_dir = state_dir or Path(self._state.name)
        for spec in self._topics():
            if spec.name not in self.broker.topics:
                self.broker.create_topic(spec.name, spec.partitions, spec.topic_configs(1))
        self._producer = EventProducer(self.settings, clients=self.clients)
        self._producer_started = False
        self.runtime: Replica | None = None
        self._run: asyncio.Future[int] | None = None

    def _topics(self) -> list[TopicSpec[BaseModel]]:
        processor = self.processor
        return [
            processor.source,
            processor.source.dlq_spec(),
            *processor.outputs,
            *(table.topic for table in processor.tables),
        ]

    # -- life ----------------------------------------------------------------------------

    async def __aenter__(self) -> TestPipeline[EventT]:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop(raise_on_failure=exc is None)

    async def start(self, timeout_s: float = 10.0) -> None:
        """Start the replica and wait until it is ready (tables caught up, partitions assigned)."""
        options = WorkerOptions(
            replica_id="test",
            handle_signals=False,
            commit_interval_s=0.02,
            cache_dir=self.state_dir / "caches",
            store_dir=self.state_dir / "stores",
        )
        runtime = await asyncio.wait_for(
            open_worker(self.settings, self.processor, options, self.clients), timeout_s
        )
        if runtime is None:
            raise PipelineError(f"the worker of processor {self.processor.name!r} did not open")
        self.runtime = runtime
        self._run = asyncio.ensure_future(runtime.run())
        await self._until(lambda: runtime.ready, timeout_s, "the worker to be ready")

    async def stop(self, raise_on_failure: bool = True) -> None:
        """Drain, commit and leave, as on SIGTERM; a failed worker raises here."""
        try:
            if self.runtime is not None and self._run is not None:
                self.runtime.request_stop()
                code = await self._run
                if code != EXIT_OK and raise_on_failure:
                    why = self.runtime.failure or "its log says why"
                    raise PipelineError(
                        f"the worker of processor {self.processor.name!r} exited with {code}: {why}"
                    )
        finally:
            if self._producer_started:
                await self._producer.stop()
                self._producer_started = False
            self._state.cleanup()

    @property
    def metrics(self) -> Metrics:
        """The replica's metrics: `pipeline.metrics.total("dead_lettered")` and the like."""
        if self.runtime is None:
            raise PipelineError("the pipeline has not started: use `async with TestPipeline(...)`")
        return self.runtime.metrics

    # -- in ----------------------------------------------------------------------------------

    async def publish(
        self, topic: TopicSpec[ModelT], events: Sequence[ModelT] | ModelT
    ) -> Sequence[Delivery]:
        """Events onto any of the processor's topics, as an upstream producer would.

        Onto a table's topic, it returns once the table has read them, so
        the next event handled sees them.
        """
        batch = [events] if isinstance(events, BaseModel) else list(events)
        await self._start_producer()
        deliveries = await self._producer.publish_many(topic, batch)
        await self._table_caught_up(topic.name, deliveries)
        return deliveries

    async def publish_raw(
        self,
        topic: TopicSpec[BaseModel] | str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Headers = (),
        partition: int = 0,
    ) -> None:
        """Bytes as they are: what a broken upstream sends (not msgpack, a null, no headers)."""
        name = topic if isinstance(topic, str) else topic.name
        await self._start_producer()
        client = self._producer.client
        batch = client.create_batch()
        batch.append(key, value, None, list(headers))
        await (await client.send_batch(batch, name, partition))

    async def _start_producer(self) -> None:
        if not self._producer_started:
            await self._producer.start()
            self._producer_started = True

    async def _table_caught_up(self, topic: str, deliveries: Sequence[Delivery]) -> None:
        if self.runtime is None or not deliveries:
            return
        ends: dict[TopicPartition, int] = {}
        for delivery in deliveries:
            tp = TopicPartition(delivery.topic, delivery.partition)
            ends[tp] = max(ends.get(tp, 0), delivery.offset + 1)
        for follower in self.runtime.services.followers:
            if follower.table.topic.name == topic:
                await self._until(
                    functools.partial(_has_read, follower, ends),
                    10.0,
                    f"table {follower.table.name} to read what was published",
                )

    # -- waiting ----------------------------------------------------------------------------

    async def processed(self, timeout_s: float = 10.0) -> None:
        """Until the group has committed all its source holds: handled, outputs acknowledged.

        In queue mode: until its share group has an outcome for every record."""
        source = self.processor.source.name
        logs = self.broker.topic(source).partitions
        ends = {TopicPartition(source, log.partition): log.high_watermark for log in logs}
        if self.processor.delivery == "queue":
            shared = self.broker.share_groups

            def settled_all() -> bool:
                found = shared.get(self.processor.group_id)
                return found is not None and found.settled(ends)

            await self._until(settled_all, timeout_s, f"every record of {source} to be settled")
            return
        group = self.broker.group(self.processor.group_id)

        def committed_all() -> bool:
            return all(
                end == 0 or (tp in group.commits and group.commits[tp].offset >= end)
                for tp, end in ends.items()
            )

        await self._until(committed_all, timeout_s, f"every record of {source} to be committed")

    async def _until(self, condition: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if self._run is not None and self._run.done():
                code = self._run.result()
                raise PipelineError(f"the worker exited ({code}) while waiting for {what}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout_s:g}s for {what}")
            await asyncio.sleep(POLL_S)

    # -- out ---------------------------------------------------------------------------------

    def records(self, topic: TopicSpec[BaseModel] | str) -> list[Record]:
        """Every record on a topic as stored, in partition then offset order."""
        name = topic if isinstance(topic, str) else topic.name
        return [
            entry.record
            for log in self.broker.topic(name).partitions
            for entry in log.entries
            if entry.record is not None
        ]

    def outputs(self, topic: TopicSpec[ModelT]) -> list[ModelT]:
        """The events on an output topic, decoded, in partition then offset order."""
        return [
            cast(
                ModelT,
                decode_value(
                    topic,
                    record.value,
                    partition=record.partition,
                    offset=record.offset,
                    key=record.key,
                ),
            )
            for record in self.records(topic)
        ]

    def dead_letters(self) -> list[DeadLetter]:
        """What the processor dead-lettered, with the error it gave."""
        letters = []
        for record in self.records(self.processor.source.dlq_name):
            headers = record.headers

            def header(name: str, default: str = "", of: Headers = headers) -> str:
                return header_value(of, name) or default

            letters.append(
                DeadLetter(
                    source_offset=int(header(dlq.SOURCE_OFFSET, "-1")),
                    source_partition=int(header(dlq.SOURCE_PARTITION, "-1")),
                    error_type=header(dlq.ERROR_TYPE),
                    error_message=header(dlq.ERROR_MESSAGE),
                    attempts=int(header(dlq.ATTEMPTS, "0")),
                    key=record.key,
                    value=record.value,
                )
            )
        return letters


def _has_read(follower: TableFollower, ends: Mapping[TopicPartition, int]) -> bool:
    return all((follower.position(tp) or 0) >= end for tp, end in ends.items())
