"""What `ctx.store(...)` gives a handler: reads and writes staged for the record in hand.

A handler's writes are staged per record: they join the batch's changes
only when the record succeeds, so a failed attempt (retried, or
dead-lettered) leaves no half of its changes behind, and a retry starts
from the state the record first saw. Values are copied in (encoded) at
`set`, so a value mutated afterwards does not change the store behind the
handler's back.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Generic, TypeVar

from pipeline.stores.partition_state import Changes, PartitionState
from pipeline.stores.store_spec import Store, StoreValueError, encode_key

ValueT = TypeVar("ValueT")
Number = TypeVar("Number", int, float, Decimal)


class StoreView(Generic[ValueT]):
    def __init__(self, store: Store[ValueT], state: PartitionState, staged: Changes) -> None:
        self.store = store
        self._state = state
        self._staged = staged[store.name]

    def _raw(self, key: bytes) -> bytes | None:
        if key in self._staged:
            return self._staged[key]
        return self._state.read(self.store.name, key)

    def get(self, key: str | bytes, default: ValueT | None = None) -> ValueT | None:
        raw = self._raw(encode_key(key))
        return default if raw is None else self.store.decode(raw)

    def __contains__(self, key: str | bytes) -> bool:
        return self._raw(encode_key(key)) is not None

    def set(self, key: str | bytes, value: ValueT) -> None:
        if value is None:
            raise StoreValueError(
                f"store {self.store.name!r}: None is not a value; use delete({key!r})"
            )
        self._staged[encode_key(key)] = self.store.encode(value)

    def delete(self, key: str | bytes) -> None:
        self._staged[encode_key(key)] = None

    def increment(self, key: str | bytes, by: Number) -> Number:
        """Add `by` to the number under `key` (absent: 0) and keep the sum; the sum."""
        if self.store.value is not None:
            raise StoreValueError(
                f"store {self.store.name!r} keeps {self.store.value.__name__} values; "
                "increment works on plain numbers"
            )
        raw_key = encode_key(key)
        raw = self._raw(raw_key)
        current = None if raw is None else self.store.decode(raw)
        if current is not None and not isinstance(current, int | float | Decimal):
            raise StoreValueError(
                f"store {self.store.name!r}: key {key!r} holds a {type(current).__name__}, "
                "not a number"
            )
        total: Number = by + current if current is not None else by  # type: ignore[assignment, operator]
        self._staged[raw_key] = self.store.encode(total)  # type: ignore[arg-type]
        return total
