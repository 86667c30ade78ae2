"""What `ctx.window(W)` gives a handler: add a value at an event time, get the windows it closed.

Entries are ordered by window end in the window's store (`w` + end + start +
key), so the windows stream time has closed are one range scan from the
start; a session also has an entry per key (`s` + key + start) to find the
sessions an event touches. Every write goes through the record's staging
(pipeline.stores.store_view), so a failed attempt changes no window, and
through the changelog, so windows are restored and exactly-once like any
store. Stream time is kept in the store too (`t`): a restart does not
reopen windows that had closed.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.stores.partition_state import PartitionState
from pipeline.stores.store_spec import encode_key
from pipeline.stores.windows import LateEventError, Window, WindowResult

STREAM_TIME_KEY = b"t"
_WINDOW = b"w"
_SESSION = b"s"
_EVENTS = b"e"
_EXPIRY = b"x"
_TIMES = struct.Struct(">QQ")
_TIME = struct.Struct(">Q")
_LENGTH = struct.Struct(">I")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def event_ms(at: datetime | int | float) -> int:
    """Milliseconds since the epoch: a datetime (naive means UTC) or a number of ms.

    The millisecond an instant falls in, counted exactly: rounding (as the
    float of `timestamp()` invites) put an event at 10:00:59.9996 into the
    10:01 window, which the order's own minute, and any check of it, says
    is 10:00.
    """
    if isinstance(at, datetime):
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        return (at - _EPOCH) // _MS
    return int(at)


def _window_key(end: int, start: int, key: bytes) -> bytes:
    return _WINDOW + _TIMES.pack(end, start) + key


def _session_prefix(key: bytes) -> bytes:
    return _SESSION + _LENGTH.pack(len(key)) + key


def _events_prefix(key: bytes) -> bytes:
    return _EVENTS + _LENGTH.pack(len(key)) + key


class WindowView:
    def __init__(
        self,
        window: Window,
        state: PartitionState,
        staged: dict[bytes, bytes | None],
        on_late: Callable[[str], None],
        record_time: Callable[[], int] = lambda: 0,
    ) -> None:
        self.window = window
        self._state = state
        self._staged = staged
        self._on_late = on_late
        """Told of each late event dropped (the runtime counts it in a metric)."""
        self._name = window.name
        self._record_time = record_time
        """The record's own timestamp (ms): the event time when `add` is given none."""

    # -- raw access through the record's staging --------------------------------------------

    def _get(self, key: bytes) -> Any:
        raw = self._staged[key] if key in self._staged else self._state.read(self._name, key)
        return None if raw is None else self.window.store.decode(raw)

    def _set(self, key: bytes, value: Any) -> None:
        self._staged[key] = self.window.store.encode(value)

    def _delete(self, key: bytes) -> None:
        self._staged[key] = None

    def _scan(self, start: bytes, stop: bytes) -> list[tuple[bytes, Any]]:
        found = self._state.scan(self._name, start, stop, self._staged)
        return [(k, self.window.store.decode(v)) for k, v in found]

    # -- the handler's calls ----------------------------------------------------------------

    @property
    def stream_time_ms(self) -> int | None:
        """The latest event time this partition has seen, None before the first."""
        stored = self._get(STREAM_TIME_KEY)
        return None if stored is None else int(stored)

    def add(
        self, key: str | bytes, value: Any, at: datetime | int | float | None = None
    ) -> list[WindowResult]:
        """Fold `value` into `key`'s windows holding event time `at` (a datetime, naive
        meaning UTC, or ms since the epoch; None: the record's timestamp).

        Returns, with emit='update', the windows this changed (current values);
        with emit='close', every window (of any key) the stream time has now
        closed, each once. A late event is dropped (counted) or raises
        LateEventError (late='dlq').
        """
        window = self.window
        at_ms = self._record_time() if at is None else event_ms(at)
        previous = self.stream_time_ms
        stream = at_ms if previous is None else max(previous, at_ms)
        if previous is None or stream > previous:
            self._set(STREAM_TIME_KEY, stream)
        raw_key = encode_key(key)
        if window.kind == "session":
            updated = self._add_to_session(raw_key, value, at_ms, stream)
        elif window.kind == "sliding":
            updated = self._add_to_sliding(raw_key, value, at_ms, stream)
        else:
            updated = self._add_to_fixed(raw_key, value, at_ms, stream)
        closed = self._close(stream)
        if updated is None:
            self._late_event(at_ms, stream)
        if window.emit == "update":
            return [] if updated is None else updated
        return closed

    def _late_event(self, at_ms: int, stream: int) -> None:
        if self.window.late == "dlq":
            raise LateEventError(self._name, at_ms, stream, self.window.grace_ms)
        self._on_late(self._name)

    def _add_to_fixed(
        self, key: bytes, value: Any, at_ms: int, stream: int
    ) -> list[WindowResult] | None:
        window = self.window
        aggregate = window.aggregate
        grace = window.grace_ms
        updated = []
        for start in window.starts(at_ms):
            end = start + window.size_ms
            if end + grace <= stream:
                continue  # this window closed already
            entry_key = _window_key(end, start, key)
            stored = self._get(entry_key)
            aggregate_state = aggregate.initial() if stored is None else stored[0]
            aggregate_state = aggregate.add(aggregate_state, value)
            self._set(entry_key, [aggregate_state])
            updated.append(
                WindowResult(_text(key), start, end, aggregate.result(aggregate_state), False)
            )
        return updated or None

    def _add_to_session(
        self, key: bytes, value: Any, at_ms: int, stream: int
    ) -> list[WindowResult] | None:
        window = self.window
        aggregate = window.aggregate
        gap = window.gap_ms
        prefix = _session_prefix(key)
        touching = []
        for index_key, last in self._scan(prefix, prefix + b"\xff" * 8):
            (start,) = struct.unpack(">Q", index_key[len(prefix) :])
            if start - gap <= at_ms < last + gap:
                touching.append((start, int(last)))
        start = min([at_ms, *(s for s, _ in touching)])
        last = max([at_ms, *(t for _, t in touching)])
        if not touching and last + gap + window.grace_ms <= stream:
            return None
        merged = aggregate.initial()
        for old_start, old_last in touching:
            entry_key = _window_key(old_last + gap, old_start, key)
            stored = self._get(entry_key)
            if stored is not None:
                merged = aggregate.merge(merged, stored[0])
            self._delete(entry_key)
            self._delete(prefix + struct.pack(">Q", old_start))
        merged = aggregate.add(merged, value)
        self._set(_window_key(last + gap, start, key), [merged])
        self._set(prefix + struct.pack(">Q", start), last)
        return [WindowResult(_text(key), start, last + gap, aggregate.result(merged), False)]

    def _add_to_sliding(
        self, key: bytes, value: Any, at_ms: int, stream: int
    ) -> list[WindowResult] | None:
        """The event's values are kept (by key and time, and in an expiry index by time) for
        as long as a window may still need them; its own window is marked by its end."""
        window = self.window
        if at_ms + 1 + window.grace_ms <= stream:
            return None  # its own window closed already
        prefix = _events_prefix(key)
        event_key = prefix + _TIME.pack(at_ms)
        self._set(event_key, [*(self._get(event_key) or []), value])
        self._set(_EXPIRY + _TIME.pack(at_ms) + key, 0)
        self._set(_window_key(at_ms + 1, max(at_ms - window.size_ms, 0), key), 0)
        if window.emit != "update":
            return []
        # Its own window, and those of the key's later events it falls in.
        later = self._scan(event_key, prefix + _TIME.pack(at_ms + window.size_ms + 1))
        return [self._sliding(key, _TIME.unpack(k[len(prefix) :])[0], False) for k, _ in later]

    def _sliding(self, key: bytes, at_ms: int, final: bool) -> WindowResult:
        """The window of `key`'s event at `at_ms`: its events in [at_ms - size, at_ms], folded
        in event-time order."""
        aggregate = self.window.aggregate
        start = max(at_ms - self.window.size_ms, 0)
        prefix = _events_prefix(key)
        state = aggregate.initial()
        for _, values in self._scan(prefix + _TIME.pack(start), prefix + _TIME.pack(at_ms + 1)):
            for value in values:
                state = aggregate.add(state, value)
        return WindowResult(_text(key), start, at_ms + 1, aggregate.result(state), final)

    def _expire_events(self, earliest_end: int) -> None:
        """Events no open or future window can hold: a window still open, or the window of
        an event not late, ends at `earliest_end` or later, so holds events from
        `earliest_end - 1 - size` on."""
        oldest_needed = earliest_end - 1 - self.window.size_ms
        if oldest_needed <= 0:
            return
        for expiry_key, _ in self._scan(_EXPIRY, _EXPIRY + _TIME.pack(oldest_needed)):
            at = expiry_key[1:9]
            self._delete(_events_prefix(expiry_key[9:]) + at)
            self._delete(expiry_key)

    def _close(self, stream: int) -> list[WindowResult]:
        """Every window whose end plus the grace stream time has reached: deleted, returned."""
        hints = self._state.hints
        bound = stream - self.window.grace_ms  # windows ending at or before it are closed
        if bound < hints.get(self._name, 0):
            return []  # nothing ends this early (a lower bound of the open windows' ends)
        closed = []
        stop = _WINDOW + _TIMES.pack(max(bound, 0) + 1, 0)
        aggregate = self.window.aggregate
        sliding = self.window.kind == "sliding"
        for entry_key, stored in self._scan(_WINDOW, stop):
            end, start = _TIMES.unpack(entry_key[1:17])
            key = entry_key[17:]
            self._delete(entry_key)
            if self.window.kind == "session":
                self._delete(_session_prefix(key) + struct.pack(">Q", start))
            if sliding:
                closed.append(self._sliding(key, end - 1, True))
            else:
                value = aggregate.result(stored[0])
                closed.append(WindowResult(_text(key), start, end, value, True))
        if sliding:
            self._expire_events(max(bound, 0) + 1)
        hints[self._name] = max(bound, 0) + 1
        return closed


def _text(key: bytes) -> str:
    return key.decode(errors="replace")
