"""What a user writes: a processor, its handler and the context it gets.

A handler is `async def handle(event, ctx) -> None | event | [events]`.
Returned events go to the processor's output topic for their type (or to
an explicit `Emit(topic, event)`); the source offset is committed only after
they are acknowledged. Dependencies are called through `ctx.call(name, ...)`
so their circuit breakers see every outcome.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, cast, overload

from pydantic import BaseModel

from pipeline.app_modules import import_app_module
from pipeline.catalogue import TopicSpec
from pipeline.errors import ConfigError, PipelineError
from pipeline.kafka.port import Record
from pipeline.queue_policy import Declared, QueuePolicy, check_queue_declaration
from pipeline.resilience.breaker import BreakerPolicy, BreakerRegistry
from pipeline.resilience.flood_guard import FloodGuardPolicy
from pipeline.resilience.retry import RetryPolicy
from pipeline.stores.declaration import check_state_declaration
from pipeline.stores.partition_state import Changes, PartitionState
from pipeline.stores.store_spec import Store
from pipeline.stores.store_view import StoreView
from pipeline.stores.table import RowT, Table
from pipeline.stores.window_view import WindowView
from pipeline.stores.windows import Window
from pipeline.undeclared import UndeclaredDependencyError, UndeclaredStoreError
from pipeline.wire.codec import position_id
from pipeline.wire.envelope import Envelope

if TYPE_CHECKING:
    from pipeline.stores.db import Database
    from pipeline.stores.services import Services
    from pipeline.stores.table import TableView

T = TypeVar("T")
ValueT = TypeVar("ValueT")
EventT = TypeVar("EventT", bound=BaseModel)
"""The event model of a processor's source: what its handler is given."""


class PermanentError(PipelineError):
    """Raise from a handler for input that will never succeed: dead-lettered without retries."""


class HandlerTimeout(PipelineError):
    """A handler call ran past the processor's `handler_timeout_s` and was cancelled.

    Retried like any failure, then dead-lettered with this as its reason.
    """

    def __init__(self, timeout_s: float, topic: str, partition: int, offset: int) -> None:
        self.timeout_s = timeout_s
        super().__init__(
            f"the handler did not finish {topic}-{partition}@{offset} within its deadline of "
            f"{timeout_s:g}s (Processor.handler_timeout_s) and was cancelled; give what it "
            "awaits a timeout of its own, or raise handler_timeout_s if the work is that slow"
        )


@dataclass(frozen=True)
class Emit:
    """An output event for a named output topic (when its type alone is ambiguous)."""

    topic: TopicSpec[BaseModel]
    event: BaseModel


@dataclass(frozen=True)
class ToSink:
    """An item for the processor's sink, written with the rest of its batch."""

    item: Any


SinkWriter = Callable[[Sequence[Any], "Services"], Awaitable[None]]


@dataclass(frozen=True)
class Sink:
    """Where a processor writes besides topics; one `write` per batch, must be idempotent.

    A batch may be written again after a crash or a rebalance, so `write`
    must leave the same result when given items it has seen (upsert by
    event id). Its failures go through the breaker named `name` and are
    retried without limit: a down database pauses the partition, it never
    dead-letters good events.
    """

    name: str
    write: SinkWriter


HandlerResult = None | BaseModel | Emit | ToSink | Sequence[BaseModel | Emit | ToSink]
Handler = Callable[[EventT, "Context"], Awaitable[HandlerResult]]
SyncHandler = Callable[[EventT], HandlerResult]


@dataclass(frozen=True)
class Processor(Generic[EventT]):
    """A consumer-group job: read `source`, run `handler`, publish to `outputs`.

    Generic over the source's event model, so a handler declared for
    another model than its source carries is a type error:
    `Processor("enrich", ORDERS, enrich)` is a `Processor[Order]` and
    `enrich` must take an `Order`.
    """

    name: str
    source: TopicSpec[EventT]
    handler: Handler[EventT] | SyncHandler[EventT]
    outputs: tuple[TopicSpec[BaseModel], ...] = ()
    lanes: int = 1
    """Handlers running at once per partition; one key's events stay in order."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    dependencies: dict[str, BreakerPolicy] = field(default_factory=dict)
    run_in: Literal["loop", "thread", "process"] = "loop"
    """`thread`/`process`: a sync `handler(event)` for CPU-heavy work, off the event loop."""
    group: str | None = None
    queue_records: int = 20000
    """Records a partition may hold, queued or uncommitted; also the duplicate bound."""
    queue_bytes: int = 16 * 1024 * 1024
    batch_records: int = 500
    exactly_once: bool = False
    """Outputs and source offsets committed in one Kafka transaction (runtime.transactions)."""
    tables: tuple[Table[BaseModel], ...] = ()
    """Compacted topics materialised locally before processing starts (ctx.table)."""
    sink: Sink | None = None
    database: bool = False
    """Open the process's PostgreSQL pool (ctx.db) from PIPELINE_DATABASE_URL."""
    handler_timeout_s: float | None = 30.0
    """A handler call still running after this long is cancelled (HandlerTimeout), retried
    and dead-lettered like any failure; None: no deadline. Kept under the worker's
    liveness stall (60 s), so a hung call costs its record, not the replica."""
    flood_guard: FloodGuardPolicy | None = field(default_factory=FloodGuardPolicy)
    """When dead letters are a flood: pause the partition instead (None: never pause)."""
    quarantine_after: int | None = 3
    """A record in hand when its owner died or was dropped this many times in a row is
    dead-lettered as Quarantined without running it (pipeline.runtime.quarantine); None: off."""
    stores: tuple[Store[Any], ...] = ()
    """Key-value state of its own, per partition, kept in a changelog topic (ctx.store)."""
    windows: tuple[Window, ...] = ()
    """Windowed aggregations on event time, kept like stores (ctx.window)."""
    standbys: int = 0
    """Other replicas keeping warm copies of each partition's stores, so a failover restores
    a tail, not the whole store (pipeline.runtime.standbys)."""
    delivery: Literal["stream", "queue"] = "stream"
    """stream: partitions to replicas, in order per key; queue: any record to any replica
    through a share group, no order, replicas past the partition count (pipeline.queue_delivery)."""
    queue: QueuePolicy = field(default_factory=QueuePolicy)

    def __post_init__(self) -> None:
        if self.lanes < 1:
            raise ConfigError(f"processor {self.name!r}: lanes must be at least 1")
        if self.batch_records > self.queue_records:
            raise ConfigError(f"processor {self.name!r}: batch_records exceeds queue_records")
        if self.quarantine_after is not None and self.quarantine_after < 1:
            raise ConfigError(f"processor {self.name!r}: quarantine_after must be at least 1")
        if self.handler_timeout_s is not None and not self.handler_timeout_s > 0:
            raise ConfigError(
                f"processor {self.name!r}: handler_timeout_s must be positive (None: no deadline)"
            )
        table_names = [table.name for table in self.tables]
        if len(set(table_names)) != len(table_names):
            raise ConfigError(f"processor {self.name!r}: two tables share a name: {table_names}")
        check_state_declaration(
            self.name, self.state_stores, self.lanes, self.run_in, self.standbys
        )
        check_queue_declaration(
            Declared(
                self.name,
                self.delivery,
                self.exactly_once,
                bool(self.state_stores or self.standbys),
                self.lanes,
                self.retry.attempts,
            )
        )

        by_type: dict[type[BaseModel], TopicSpec[BaseModel] | None] = {}
        for spec in self.outputs:
            # None marks a type that several outputs carry: the handler must Emit.
            by_type[spec.event_model] = None if spec.event_model in by_type else spec
        object.__setattr__(self, "_output_by_type", by_type)

    @property
    def state_stores(self) -> tuple[Store[Any], ...]:
        """Its stores and the stores its windows keep their state in."""
        return (*self.stores, *(window.store for window in self.windows))

    @property
    def group_id(self) -> str:
        return self.group or f"{self.name}"

    def output_for(self, event: BaseModel) -> TopicSpec[BaseModel]:
        by_type: dict[type[BaseModel], TopicSpec[BaseModel] | None] = self._output_by_type  # type: ignore[attr-defined]
        if type(event) in by_type:
            spec = by_type[type(event)]
            if spec is None:
                raise PipelineError(
                    f"processor {self.name!r} has several outputs for "
                    f"{type(event).__name__}; return Emit(topic, event) to choose"
                )
            return spec
        raise PipelineError(
            f"processor {self.name!r} returned a {type(event).__name__}, but none of its "
            f"outputs ({', '.join(s.name for s in self.outputs) or 'none'}) carries that type"
        )

    def with_prefix(self, prefix: str) -> Processor[EventT]:
        """Topics and group under a prefix, as PIPELINE_TOPIC_PREFIX does for the catalogue."""
        if not prefix:
            return self
        return dataclasses.replace(
            self,
            source=self.source.with_name(prefix + self.source.name),
            outputs=tuple(spec.with_name(prefix + spec.name) for spec in self.outputs),
            tables=tuple(table.with_prefix(prefix) for table in self.tables),
            group=prefix + self.group_id,
        )


class Context:
    """What a handler sees besides the event; one per lane, updated per record."""

    def __init__(
        self,
        processor: Processor[Any],
        breakers: BreakerRegistry,
        replica_id: str,
        logger: logging.Logger,
        services: Services | None = None,
    ) -> None:
        self.processor = processor
        self.replica_id = replica_id
        self.log = logger
        self.record: Record | None = None
        self.envelope: Envelope | None = None
        """The current record's ids, once its envelope was read (pipeline.wire.envelope)."""
        self.attempt = 1
        self._breakers = breakers
        self._services = services
        self._state: PartitionState | None = None
        self.staged: Changes = {}
        """The record in hand's store writes, kept if it succeeds (pipeline.stores.store_view)."""

    def use_state(self, state: PartitionState, on_late: Callable[[str], None]) -> None:
        """The partition's stores this lane's records read and write; `on_late` counts the
        late events a window drops."""
        self._state = state
        self._on_late = on_late
        self.staged = {name: {} for name in state.declared}

    def discard_writes(self) -> None:
        """A new attempt: what a failed one staged is not kept (nor the window hints it may
        have moved, pipeline.stores.window_view)."""
        if self._state is not None and any(self.staged.values()):
            self._state.hints.clear()
            self._clear_staged()

    def _clear_staged(self) -> None:
        for changes in self.staged.values():
            changes.clear()

    def window(self, window: Window | str) -> WindowView:
        """A window declared in the processor's `windows`, by declaration or name."""
        name = window if isinstance(window, str) else window.name
        found = next((w for w in self.processor.windows if w.name == name), None)
        state = self._state
        if state is None or found is None:
            declared = [w.name for w in self.processor.windows]
            raise UndeclaredStoreError(self.processor.name, name, declared)
        return WindowView(found, state, self.staged[name], self._on_late, self._record_time)

    def _record_time(self) -> int:
        return self.record.timestamp if self.record is not None else 0

    def keep_writes(self) -> None:
        """The record succeeded: its writes join its batch's changes."""
        if self._state is not None:
            self._state.merge(self.staged)
            self._clear_staged()

    @overload
    def store(self, store: Store[ValueT]) -> StoreView[ValueT]: ...

    @overload
    def store(self, store: str) -> StoreView[Any]: ...

    def store(self, store: Store[ValueT] | str) -> StoreView[ValueT] | StoreView[Any]:
        """A store declared in the processor's `stores`, by declaration (typed) or name."""
        name = store if isinstance(store, str) else store.name
        state = self._state
        if state is None or name not in state.declared:
            declared = [s.name for s in self.processor.stores]
            raise UndeclaredStoreError(self.processor.name, name, declared)
        return StoreView(state.declared[name], state, self.staged)

    def log_fields(self) -> dict[str, object]:
        """Where this lane is, for the log lines written while it handles a record."""
        record = self.record
        if record is None:
            return {}
        fields: dict[str, object] = {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
        }
        envelope = self.envelope
        if envelope is not None:
            fields["event_id"] = envelope.event_id
            if envelope.trace_id:
                fields["trace_id"] = envelope.trace_id
        return fields

    @property
    def services(self) -> Services:
        if self._services is None:
            raise ConfigError("this context runs outside a worker: no services")
        return self._services

    @property
    def db(self) -> Database:
        """The process's PostgreSQL pool (declare `database=True` on the processor)."""
        return self.services.db

    @overload
    def table(self, table: Table[RowT]) -> TableView[RowT]: ...

    @overload
    def table(self, table: str) -> TableView[BaseModel]: ...

    def table(self, table: Table[RowT] | str) -> TableView[RowT] | TableView[BaseModel]:
        """A materialised table declared in the processor's `tables`, by declaration or name.

        Given the `Table` itself, lookups are typed with its model.
        """
        if isinstance(table, str):
            return self.services.table(table)
        # The view was built from this very declaration (pipeline.stores.services).
        return cast("TableView[RowT]", self.services.table(table.name))

    @property
    def event_id(self) -> str:
        """The current record's event id, or topic/partition/offset when it has none."""
        if self.envelope is not None:
            return self.envelope.event_id
        record = self.record
        if record is None:
            raise ConfigError("this context has no current record: no event id")
        return position_id(record.topic, record.partition, record.offset)

    async def call(self, dependency: str, function: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Call a dependency through its breaker.

        When the breaker is open this raises DependencyUnavailable and the
        partition waits; a failed call raises DependencyError, retried
        without limit because the event is not at fault. A name the
        processor does not declare in `dependencies` raises
        UndeclaredDependencyError, and the worker stops with it.
        """
        if dependency not in self.processor.dependencies:
            raise UndeclaredDependencyError(
                self.processor.name, dependency, list(self.processor.dependencies)
            )
        return await self._breakers.get(dependency).call(lambda: function(*args))


def load_processors(module_name: str, prefix: str = "") -> dict[str, Processor[Any]]:
    """The application's processors (its module's PROCESSORS), under the topic prefix."""
    module = import_app_module(
        module_name, "processors", "PIPELINE_PROCESSORS_MODULE (or [tool.pipeline] in pyproject)"
    )
    processors: dict[str, Processor[Any]] = getattr(module, "PROCESSORS", {})
    return {name: processor.with_prefix(prefix) for name, processor in processors.items()}


def load_processor(module_name: str, name: str, prefix: str = "") -> Processor[Any]:
    """Find a processor by name in the application's module (default `consumers`)."""
    processors = load_processors(module_name, prefix)
    if name not in processors:
        raise ConfigError(
            f"no processor {name!r} in {module_name}.PROCESSORS; "
            f"known: {', '.join(sorted(processors)) or '(none)'}"
        )
    return processors[name]
