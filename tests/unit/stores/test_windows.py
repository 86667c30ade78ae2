"""Windows on event time, checked against a straightforward reference over the same events.

The reference keeps plain dicts and lists and applies the documented rules
(stream time is the latest event time; a window closes once stream time
reaches its end plus the grace; an event for closed windows only is late);
the window view keeps sorted keys in a store, staged per record and in
flight per batch, as the runtime does. Out-of-order and late events come
from hypothesis.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipeline.errors import ConfigError
from pipeline.publishing.delivery import AckedBatch, DeliveryList
from pipeline.stores.partition_state import BatchChanges, PartitionState
from pipeline.stores.rocks import UNBOUNDED
from pipeline.stores.window_view import WindowView, event_ms
from pipeline.stores.windows import (
    Count,
    LateEventError,
    Max,
    Mean,
    Min,
    Reduce,
    Sum,
    Window,
    WindowResult,
)
from pipeline.wire.codec import EncodedEvent

Event = tuple[str, int, int]
"""(key, value, event time in ms)."""

TIMES = st.one_of(st.integers(0, 80).map(lambda n: n * 250), st.integers(0, 20_000))
"""On a grid of 250 ms most of the time, so that times fall on window ends and grace bounds."""
EVENTS = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(1, 9), TIMES),
    max_size=60,
)


@dataclass
class Driver:
    """Runs events through a window as the runtime does: staged per record, batches acked."""

    window: Window
    directory: Path
    batch: int = 4
    results: list[list[WindowResult]] = field(default_factory=list)
    late: list[str] = field(default_factory=list)
    left: list[bytes] = field(default_factory=list)
    """The store's keys once the events ran: what it still keeps."""

    def run(self, events: list[Event]) -> list[list[WindowResult]]:
        state = PartitionState((self.window.store,), "g", self.directory, 0, UNBOUNDED)
        offset = 0
        in_flight: deque[BatchChanges] = deque()
        try:
            for index, (key, value, at) in enumerate(events):
                staged: dict[bytes, bytes | None] = {}
                view = WindowView(self.window, state, staged, self.late.append)
                try:
                    self.results.append(view.add(key, value, at))
                except LateEventError:
                    self.results.append([])
                    continue  # dead-lettered: its writes are dropped
                state.merge({self.window.name: staged})
                if index % self.batch == self.batch - 1:
                    ended = state.end_batch()
                    if ended is not None:
                        in_flight.append(ended)
                    if len(in_flight) > 2:  # two stay in flight, read from memory
                        offset = _acknowledge(state, in_flight.popleft(), offset)
            self.left = [k for k, _ in state.scan(self.window.name, b"", b"\xff", {})]
            return self.results
        finally:
            state.close()


def _acknowledge(state: PartitionState, ended: BatchChanges, offset: int) -> int:
    """As the publisher leaves a batch once the broker took its changelog records."""
    for name, changes in ended.changes.items():
        records = [EncodedEvent(k, v, [], "") for k, v in changes.items()]
        acked = AckedBatch(0, offset, list(range(len(records))))
        ended.acks[name] = _resolved(DeliveryList("c", records, [acked]))
        offset += len(records)
    state.acknowledged(ended)
    return offset


def _resolved(value: Any) -> asyncio.Future[Any]:
    loop = asyncio.new_event_loop()
    try:
        future: asyncio.Future[Any] = loop.create_future()
        future.set_result(value)
        return future
    finally:
        loop.close()


def reference_fixed(window: Window, events: list[Event]) -> tuple[dict[Any, int], set[Any], int]:
    """(aggregate per (key, start), windows closed at the end, late events)."""
    sums: dict[tuple[str, int], int] = defaultdict(int)
    stream = -1
    late = 0
    for key, value, at in events:
        stream = max(stream, at)
        accepted = False
        for start in window.starts(at):
            if start + window.size_ms + window.grace_ms > stream:
                sums[(key, start)] += value
                accepted = True
        late += not accepted
    closed = {w for w in sums if w[1] + window.size_ms + window.grace_ms <= stream}
    return dict(sums), closed, late


def emitted(results: list[list[WindowResult]]) -> dict[tuple[str, int, int], Any]:
    """(key, start, end) → value of every window closed; none may close twice."""
    found: dict[tuple[str, int, int], Any] = {}
    for batch in results:
        for result in batch:
            window = (result.key, result.start_ms, result.end_ms)
            assert window not in found, f"emitted twice: {result}"
            assert result.final
            found[window] = result.value
    return found


@settings(max_examples=120, deadline=None)
@given(events=EVENTS, grace=st.sampled_from([0, 500, 3_000]), hop=st.sampled_from([None, 1000]))
@example(events=[("a", 1, 1000), ("a", 2, 2500), ("a", 4, 1500)], grace=500, hop=None)
def test_fixed_windows_close_once_with_what_the_reference_accepted(
    events: list[Event], grace: int, hop: int | None
) -> None:
    if hop is None:
        window = Window.tumbling("w", 2.0, Sum(), grace_s=grace / 1000)
    else:
        window = Window.hopping("w", 2.0, hop / 1000, Sum(), grace_s=grace / 1000)
    with tempfile.TemporaryDirectory() as directory:
        driver = Driver(window, Path(directory))
        results = driver.run(events)
    sums, closed, late = reference_fixed(window, events)
    assert emitted(results) == {(k, s, s + window.size_ms): sums[(k, s)] for k, s in closed}
    assert len(driver.late) == late


@settings(max_examples=80, deadline=None)
@given(events=EVENTS, grace=st.sampled_from([0, 2_000]))
def test_updates_carry_each_windows_running_value(events: list[Event], grace: int) -> None:
    window = Window.tumbling("w", 2.0, Sum(), grace_s=grace / 1000, emit="update")
    with tempfile.TemporaryDirectory() as directory:
        results = Driver(window, Path(directory)).run(events)
    sums, _, _ = reference_fixed(window, events)
    last: dict[tuple[str, int], Any] = {}
    for batch in results:
        for result in batch:
            assert not result.final
            last[(result.key, result.start_ms)] = result.value
    assert last == sums


def reference_sessions(
    window: Window, events: list[Event]
) -> tuple[dict[tuple[str, int, int], int], int]:
    """Sessions closed by the end ((key, start, end) → sum), and late events.

    An event may bridge back into the time of a session that closed already
    (it is within the gap of an open one): the open one takes it and starts
    earlier; the closed one stays as it was emitted.
    """
    gap, grace = window.gap_ms, window.grace_ms
    open_sessions: dict[str, list[list[int]]] = defaultdict(list)  # [start, last, sum]
    closed: dict[tuple[str, int], int] = {}
    stream = -1
    late = 0
    for key, value, at in events:
        stream = max(stream, at)
        sessions = open_sessions[key]
        touching = [s for s in sessions if s[0] - gap <= at < s[1] + gap]
        if not touching and at + gap + grace <= stream:
            late += 1
        else:
            merged = [
                min([at, *(s[0] for s in touching)]),
                max([at, *(s[1] for s in touching)]),
                value + sum(s[2] for s in touching),
            ]
            open_sessions[key] = [s for s in sessions if s not in touching] + [merged]
        for other, sessions in open_sessions.items():
            for session in list(sessions):
                if session[1] + gap + grace <= stream:
                    closed[(other, session[0], session[1] + gap)] = session[2]
                    sessions.remove(session)
    return closed, late


@settings(max_examples=150, deadline=None)
@given(events=EVENTS, gap=st.sampled_from([500, 2_000]), grace=st.sampled_from([0, 1_000]))
@example(events=[("a", 1, 1000), ("a", 2, 500), ("a", 3, 5000)], gap=500, grace=0)
@example(events=[("a", 1, 0), ("a", 2, 500), ("a", 3, 5000)], gap=500, grace=0)
@example(events=[("b", 1, 1500), ("a", 2, 1000)], gap=500, grace=0)
@example(events=[("a", 1, 0), ("a", 1, 2000), ("a", 1, 0), ("a", 1, 4000)], gap=2000, grace=0)
def test_sessions_merge_close_and_drop_late_events_as_the_reference(
    events: list[Event], gap: int, grace: int
) -> None:
    window = Window.session("w", gap / 1000, Sum(), grace_s=grace / 1000)
    with tempfile.TemporaryDirectory() as directory:
        driver = Driver(window, Path(directory))
        results = driver.run(events)
    closed, late = reference_sessions(window, events)
    assert emitted(results) == closed
    assert len(driver.late) == late


def reference_sliding(
    window: Window, events: list[Event]
) -> tuple[dict[tuple[str, int, int], int], dict[tuple[str, int, int], int], int]:
    """(windows closed by the end, windows still open; each (key, start, end) → sum), late.

    Each event not late has a window: its key's events in [t - size, t]. It is
    late once its own window closed (t + 1 + grace <= stream time); an event
    in a closed window's range would be late too, so a window's sum is final
    when it closes.
    """
    size, grace = window.size_ms, window.grace_ms
    accepted: dict[str, list[tuple[int, int]]] = defaultdict(list)
    stream, late = -1, 0
    for key, value, at in events:
        stream = max(stream, at)
        if at + 1 + grace <= stream:
            late += 1
        else:
            accepted[key].append((at, value))
    closed, still_open = {}, {}
    for key, taken in accepted.items():
        for t in {at for at, _ in taken}:
            window_sum = sum(v for at, v in taken if t - size <= at <= t)
            found = closed if t + 1 + grace <= stream else still_open
            found[(key, max(t - size, 0), t + 1)] = window_sum
    return closed, still_open, late


@settings(max_examples=150, deadline=None)
@given(events=EVENTS, grace=st.sampled_from([0, 1_000]), emit=st.sampled_from(["close", "update"]))
@example(events=[("a", 1, 1000), ("a", 2, 3000), ("a", 4, 2000)], grace=1_000, emit="close")
@example(events=[("a", 1, 0), ("a", 2, 2000), ("a", 4, 4001)], grace=0, emit="close")
def test_sliding_windows_hold_each_events_last_size_and_close_as_the_reference(
    events: list[Event], grace: int, emit: str
) -> None:
    window = Window.sliding("w", 2.0, Sum(), grace_s=grace / 1000, emit=emit)  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory() as directory:
        driver = Driver(window, Path(directory))
        results = driver.run(events)
    closed, still_open, late = reference_sliding(window, events)
    assert len(driver.late) == late
    if emit == "close":
        assert emitted(results) == closed
    else:
        last = {(r.key, r.start_ms, r.end_ms): r.value for batch in results for r in batch}
        assert last == {**closed, **still_open}
    # Kept no longer than a window may need them: an event long after closes and expires all.
    with tempfile.TemporaryDirectory() as directory:
        driver = Driver(window, Path(directory), batch=1)
        driver.run([*events, ("z", 1, 10**6)])
    kept_for_z = [k for k in driver.left if k.endswith(b"z") or k.startswith(b"e\0\0\0\1z")]
    assert sorted(driver.left) == sorted([b"t", *kept_for_z]), (
        "an expired event or closed window was kept"
    )


@given(at=st.integers(0, 10**12), size=st.integers(1, 100), hop=st.integers(1, 100))
def test_hopping_assignment_covers_exactly_the_windows_holding_the_time(
    at: int, size: int, hop: int
) -> None:
    hop = min(hop, size)
    window = Window.hopping("w", size / 1000, hop / 1000, Count())
    starts = window.starts(at)
    assert starts == sorted(starts)
    for start in starts:
        assert start % hop == 0 and start <= at < start + size
    every = [s for s in range(max(0, at - size), at + 1) if s % hop == 0 and s <= at < s + size]
    assert starts == every


def test_three_orders_in_a_minute_then_one_after_the_grace(tmp_path: Path) -> None:
    minute = Window.tumbling("revenue", 60, Sum(), grace_s=10)
    events: list[Event] = [
        ("fr", 10, 5_000),
        ("fr", 20, 30_000),
        ("fr", 30, 59_000),
        ("fr", 5, 61_000),  # the next minute; the first is still in its grace
        ("fr", 1, 58_000),  # late but within the grace: counted in the first minute
        ("fr", 7, 71_000),  # stream time 71 s: the first minute (ends 60 s + 10 s) closes
        ("fr", 100, 59_500),  # past the grace: dropped
    ]
    driver = Driver(minute, tmp_path)
    results = driver.run(events)
    assert [len(r) for r in results] == [0, 0, 0, 0, 0, 1, 0]
    assert results[5][0] == WindowResult("fr", 0, 60_000, 61, True)
    assert driver.late == ["revenue"]


def test_late_events_can_go_to_the_dead_letter_queue(tmp_path: Path) -> None:
    window = Window.tumbling("w", 1, Count(), late="dlq")
    state = PartitionState((window.store,), "g", tmp_path, 0, UNBOUNDED)
    try:
        staged: dict[bytes, bytes | None] = {}
        WindowView(window, state, staged, lambda name: None).add("k", 1, at=5_000)
        state.merge({"w": staged})
        with pytest.raises(LateEventError, match=r"window 'w'.*late"):
            WindowView(window, state, {}, lambda name: None).add("k", 1, at=1_000)
    finally:
        state.close()


def test_aggregates_fold_merge_and_read() -> None:
    mean = Mean()
    assert mean.result(mean.merge(mean.add(mean.initial(), Decimal("1")), [Decimal("2"), 1])) == (
        Decimal("1.5")
    )
    assert Min().merge(Min().add(None, 3), 2) == 2
    assert Max().merge(None, 4) == 4
    assert Count().merge(2, 3) == 5
    longest = Reduce(lambda s, v: max(s, len(v)), 0, merger=max)
    assert longest.add(longest.initial(), "abc") == 3
    with pytest.raises(ConfigError, match="merger"):
        Window.session("s", 1, Reduce(lambda s, v: s, 0))
    with pytest.raises(ConfigError, match="hop_s"):
        Window.hopping("h", 1, 2, Count())
    with pytest.raises(ConfigError, match="gap_s"):
        Window("s", "session", Count())


def test_event_times_are_milliseconds_or_datetimes_in_utc() -> None:
    from datetime import datetime, timedelta, timezone

    aware = datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert event_ms(aware) == event_ms(datetime(2026, 1, 1, 10)) == 1767261600000
    assert event_ms(1234) == 1234


@given(
    instant=st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    )
)
def test_an_event_time_falls_in_the_millisecond_and_minute_it_names(instant: datetime) -> None:
    """Found by `make demo`: an order at 10:00:59.9996 was summed into the 10:01 window
    (`round` of a float timestamp), while its own minute, and the demo's check, said 10:00."""
    ms = event_ms(instant)
    floor = instant.replace(microsecond=instant.microsecond // 1000 * 1000)
    assert datetime.fromtimestamp(ms // 1000, UTC) + timedelta(milliseconds=ms % 1000) == floor
    minute_start = ms // 60_000 * 60_000
    assert minute_start == event_ms(instant.replace(second=0, microsecond=0))


def test_the_last_microseconds_of_a_minute_are_still_in_it() -> None:
    last = datetime(2026, 12, 7, 10, 0, 59, 999_600, tzinfo=UTC)
    assert event_ms(last) // 60_000 == event_ms(datetime(2026, 12, 7, 10, tzinfo=UTC)) // 60_000
