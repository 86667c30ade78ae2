"""What a publish returns: where the broker stored each event.

A bulk publish of half a million events spent a quarter of its time building
one result object per event that most callers never look at. DeliveryList
keeps what the broker answered per batch (partition, base offset, which
events) and builds the per-event view the first time someone asks for it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple, overload

from pipeline.wire.codec import EncodedEvent


class Delivery(NamedTuple):
    """Where the broker stored an event."""

    topic: str
    partition: int
    offset: int
    event_id: str


class AckedBatch(NamedTuple):
    """One acknowledged record batch: its partition, first offset and event positions."""

    partition: int
    base_offset: int
    indexes: list[int]


class DeliveryList(Sequence[Delivery]):
    """Deliveries in the order the events were given, built on first access."""

    def __init__(self, topic: str, events: Sequence[EncodedEvent], batches: list[AckedBatch]):
        self._topic = topic
        self._events = events
        self._batches = batches
        self._built: list[Delivery] | None = None

    def _deliveries(self) -> list[Delivery]:
        if self._built is None:
            built: list[Delivery | None] = [None] * len(self._events)
            topic, events = self._topic, self._events
            for partition, base_offset, indexes in self._batches:
                for position, index in enumerate(indexes):
                    built[index] = Delivery(
                        topic, partition, base_offset + position, events[index].event_id
                    )
            self._built = [delivery for delivery in built if delivery is not None]
            if len(self._built) != len(self._events):
                raise AssertionError("a delivery is missing: batches do not cover every event")
        return self._built

    def __len__(self) -> int:
        return len(self._events)

    @overload
    def __getitem__(self, index: int) -> Delivery: ...

    @overload
    def __getitem__(self, index: slice) -> list[Delivery]: ...

    def __getitem__(self, index: int | slice) -> Delivery | list[Delivery]:
        return self._deliveries()[index]

    def __iter__(self) -> Iterator[Delivery]:
        return iter(self._deliveries())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DeliveryList | list):
            return list(self) == list(other)
        return NotImplemented

    def __hash__(self) -> int:
        raise TypeError("DeliveryList is not hashable")

    def __repr__(self) -> str:
        return f"DeliveryList({self._topic!r}, {len(self)} events)"
