"""Windows on event time, as a processor declares them: their kind, grace, aggregate and emission.

A window's state lives in a store of the same name (pipeline.stores.store_spec),
so it has a changelog, is restored like any store and commits in the
batch's transaction under exactly-once. Time is the event's (its field, or
the record's timestamp), never the clock: a replay or a backlog aggregates
as the live stream did. A partition's stream time is the latest event time
it has seen; a window closes once stream time reaches its end plus the
grace, and a record that arrives for closed windows only is late.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

from pipeline.errors import ConfigError, PipelineError
from pipeline.stores.store_spec import Store

StateT = TypeVar("StateT")
ResultT = TypeVar("ResultT", covariant=True)


class Aggregate(Protocol[StateT, ResultT]):
    """How a window folds values: a state msgpack can keep, and the result read from it."""

    @property
    def name(self) -> str: ...

    def initial(self) -> StateT: ...

    def add(self, state: StateT, value: Any) -> StateT: ...

    def result(self, state: StateT) -> ResultT: ...

    def merge(self, left: StateT, right: StateT) -> StateT:
        """Two states as one: sessions merge when an event bridges them."""
        ...


@dataclass(frozen=True)
class Count:
    """Events per window, whatever their values."""

    name: str = "count"

    def initial(self) -> int:
        return 0

    def add(self, state: int, value: Any) -> int:
        return state + 1

    def result(self, state: int) -> int:
        return state

    def merge(self, left: int, right: int) -> int:
        return left + right


@dataclass(frozen=True)
class Sum:
    """The values added up (int, float or Decimal: a Decimal sum stays exact)."""

    name: str = "sum"

    def initial(self) -> int:
        return 0

    def add(self, state: Any, value: Any) -> Any:
        return state + value

    def result(self, state: Any) -> Any:
        return state

    def merge(self, left: Any, right: Any) -> Any:
        return left + right


@dataclass(frozen=True)
class Min:
    """The smallest value."""

    name: str = "min"

    def wins(self, value: Any, state: Any) -> bool:
        return bool(value < state)

    def initial(self) -> Any:
        return None

    def add(self, state: Any, value: Any) -> Any:
        return value if state is None or self.wins(value, state) else state

    def result(self, state: Any) -> Any:
        return state

    def merge(self, left: Any, right: Any) -> Any:
        return left if right is None else self.add(left, right)


@dataclass(frozen=True)
class Max(Min):
    """The largest value."""

    name: str = "max"

    def wins(self, value: Any, state: Any) -> bool:
        return bool(value > state)


@dataclass(frozen=True)
class Mean:
    """Kept as [sum, count], so a mean of Decimals stays exact until it is read."""

    name: str = "mean"

    def initial(self) -> list[Any]:
        return [0, 0]

    def add(self, state: list[Any], value: Any) -> list[Any]:
        return [state[0] + value, state[1] + 1]

    def result(self, state: list[Any]) -> Any:
        total, count = state
        return total / count if count else None

    def merge(self, left: list[Any], right: list[Any]) -> list[Any]:
        return [left[0] + right[0], left[1] + right[1]]


@dataclass(frozen=True)
class Reduce(Generic[StateT]):
    """A user's fold: `function(state, value) -> state`, from `initial_state` (a value
    msgpack keeps); `merger(a, b)` joins two sessions' states (session windows need it)."""

    function: Callable[[StateT, Any], StateT]
    initial_state: StateT
    merger: Callable[[StateT, StateT], StateT] | None = None
    name: str = "reduce"

    def initial(self) -> StateT:
        return self.initial_state

    def add(self, state: StateT, value: Any) -> StateT:
        return self.function(state, value)

    def result(self, state: StateT) -> StateT:
        return state

    def merge(self, left: StateT, right: StateT) -> StateT:
        if self.merger is None:
            raise ConfigError("this Reduce has no merger, so its sessions cannot merge")
        return self.merger(left, right)


class LateEventError(PipelineError):
    """An event for windows that closed already (their end plus the grace is past).

    Dead-lettered at once, like a PermanentError, when the window says late='dlq'.
    """

    def __init__(self, window: str, event_ms: int, stream_ms: int, grace_ms: int) -> None:
        self.event_ms = event_ms
        super().__init__(
            f"window {window!r}: the event's time {event_ms} ms is late: stream time is "
            f"{stream_ms} ms and the grace {grace_ms} ms, so its windows closed already; "
            "raise the window's grace_s to accept events this late, or late='drop'"
        )


@dataclass(frozen=True)
class Window:
    """A windowed aggregation a processor keeps: `ctx.window(W).add(key, value, at=...)`.

    `kind`: `tumbling` (size), `hopping` (size, every `hop_s`), `sliding`
    (for each event at t, its key's events in [t - size, t]: a window per
    event, reported as [t - size, t + 1)), or `session` (closed after `gap_s`
    without an event of its key). `emit`: `close`
    returns each window once, when it closes; `update` returns the windows a
    record changed, each time. `late`: `drop` (counted in
    pipeline_window_late_records_total) or `dlq` (dead-lettered as
    LateEventError). Windows are deleted once closed.
    """

    name: str
    kind: Literal["tumbling", "hopping", "sliding", "session"]
    aggregate: Aggregate[Any, Any]
    size_s: float = 0.0
    hop_s: float | None = None
    gap_s: float | None = None
    grace_s: float = 0.0
    emit: Literal["close", "update"] = "close"
    late: Literal["drop", "dlq"] = "drop"
    store: Store[Any] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "store", Store(self.name))  # checks the name too
        where = f"window {self.name!r}"
        if self.grace_s < 0:
            raise ConfigError(f"{where}: grace_s must not be negative")
        if self.kind == "session":
            if self.gap_s is None or self.gap_s <= 0:
                raise ConfigError(f"{where}: a session window needs gap_s > 0")
            if isinstance(self.aggregate, Reduce) and self.aggregate.merger is None:
                raise ConfigError(
                    f"{where}: a session window merges sessions that an event bridges; give "
                    "its Reduce a merger(a, b)"
                )
            return
        if self.size_s <= 0:
            raise ConfigError(f"{where}: size_s must be positive")
        if self.kind == "hopping" and (self.hop_s is None or not 0 < self.hop_s <= self.size_s):
            raise ConfigError(f"{where}: a hopping window needs 0 < hop_s <= size_s")
        if self.kind in ("tumbling", "sliding") and self.hop_s is not None:
            raise ConfigError(f"{where}: hop_s is for hopping windows (kind='hopping')")

    @classmethod
    def tumbling(
        cls, name: str, size_s: float, aggregate: Aggregate[Any, Any], **kw: Any
    ) -> Window:
        return cls(name, "tumbling", aggregate, size_s=size_s, **kw)

    @classmethod
    def hopping(
        cls, name: str, size_s: float, hop_s: float, aggregate: Aggregate[Any, Any], **kw: Any
    ) -> Window:
        return cls(name, "hopping", aggregate, size_s=size_s, hop_s=hop_s, **kw)

    @classmethod
    def sliding(cls, name: str, size_s: float, aggregate: Aggregate[Any, Any], **kw: Any) -> Window:
        """A window per event: its key's events at most `size_s` before it, and itself."""
        return cls(name, "sliding", aggregate, size_s=size_s, **kw)

    @classmethod
    def session(cls, name: str, gap_s: float, aggregate: Aggregate[Any, Any], **kw: Any) -> Window:
        return cls(name, "session", aggregate, gap_s=gap_s, **kw)

    @property
    def grace_ms(self) -> int:
        return round(self.grace_s * 1000)

    def starts(self, at_ms: int) -> list[int]:
        """The start of every fixed window holding `at_ms`, oldest first."""
        size = round(self.size_s * 1000)
        hop = round((self.hop_s or self.size_s) * 1000)
        last = at_ms - at_ms % hop
        starts = []
        start = last
        while start > at_ms - size:
            if start >= 0:
                starts.append(start)
            start -= hop
        return starts[::-1]

    @property
    def size_ms(self) -> int:
        return round(self.size_s * 1000)

    @property
    def gap_ms(self) -> int:
        return round((self.gap_s or 0) * 1000)


@dataclass(frozen=True)
class WindowResult:
    """One window's aggregate: for `key`, over [start_ms, end_ms)."""

    key: str
    start_ms: int
    end_ms: int
    value: Any
    final: bool
    """True when the window has closed: this is its last value."""
