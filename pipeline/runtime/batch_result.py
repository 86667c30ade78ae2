"""What handling one batch of a partition produced: outputs, sink items, dead letters.

Output ids are derived from the source record's id, so a redelivered record
yields outputs with the ids they had the first time and downstream upserts
by event id stay idempotent. Outputs are encoded as they are collected: the
batch holds bytes, not live models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from pipeline.catalogue import TopicSpec
from pipeline.errors import OutputTooLargeError
from pipeline.kafka.record_size import BROKER_DEFAULT_MAX_MESSAGE_BYTES, record_size
from pipeline.processor import Emit, Processor, ToSink
from pipeline.stores.partition_state import BatchChanges
from pipeline.wire.codec import (
    EncodedEvent,
    TopicEncoder,
    derived_event_ids,
    derived_output_id,
    output_salt,
    payload_size,
)

SIZE_CHECK_MARGIN = 64 * 1024
"""Outputs smaller than their topic's limit by this much are not sized exactly (hot path)."""


@dataclass
class BatchResult:
    outputs: dict[str, tuple[TopicEncoder, list[EncodedEvent]]] = field(default_factory=dict)
    """Per output topic: its encoder and the batch's encoded events, in handling order."""
    sink_items: list[Any] = field(default_factory=list)
    dead_letters: list[EncodedEvent] = field(default_factory=list)
    processed: int = 0
    limits: Mapping[str, int] = field(default_factory=dict)
    """max.message.bytes per output topic (the broker default for those not named)."""
    state_changes: BatchChanges | None = None
    """The stores' changes of the records that succeeded, for the changelogs."""

    def _encoder(self, spec: TopicSpec[BaseModel]) -> tuple[TopicEncoder, list[EncodedEvent]]:
        entry = self.outputs.get(spec.name)
        if entry is None:
            entry = (TopicEncoder(spec), [])
            self.outputs[spec.name] = entry
        return entry

    def _encode(
        self,
        spec: TopicSpec[BaseModel],
        event: BaseModel,
        event_id: str,
        trace: str | None,
        traceparent: bytes | None,
    ) -> tuple[list[EncodedEvent], EncodedEvent]:
        entry = self._encoder(spec)
        encoded = entry[0].encode(event, event_id, trace, traceparent)
        limit = self.limits.get(spec.name, BROKER_DEFAULT_MAX_MESSAGE_BYTES)
        if payload_size(encoded) + SIZE_CHECK_MARGIN > limit:
            size = record_size(encoded.key, encoded.value, encoded.headers)
            if size > limit:
                raise OutputTooLargeError(spec.name, size, limit)
        return entry[1], encoded

    def collect(
        self,
        outcome: Any,
        source_id: str,
        trace: str | None,
        processor: Processor[Any],
        salts: list[int],
        traceparent: bytes | None = None,
    ) -> None:
        """Add what a handler returned for the record with id `source_id`.

        All or nothing: when one output cannot be encoded (wrong type, no key,
        too large) none of the record's outputs is kept, so a retry or a dead
        letter does not leave half of them behind. `salts` is the worker's
        id-salt cache.
        """
        if outcome is None:
            return
        if isinstance(outcome, ToSink):
            self.sink_items.append(outcome.item)
            return
        if isinstance(outcome, BaseModel):
            # The common case, one output event: no lists, one id.
            if not salts:
                salts.append(output_salt(processor.name, 0))
            event_id = derived_output_id(source_id, salts[0])
            into, encoded = self._encode(
                processor.output_for(outcome), outcome, event_id, trace, traceparent
            )
            into.append(encoded)
            return
        items: Sequence[Any] = (outcome,) if isinstance(outcome, Emit) else outcome
        events = []
        sink_items = []
        for item in items:
            if isinstance(item, ToSink):
                sink_items.append(item.item)
            else:
                events.append(item)
        while len(salts) < len(events):
            salts.append(output_salt(processor.name, len(salts)))
        event_ids = derived_event_ids(source_id, salts[: len(events)])
        encoded_events = []
        for item, event_id in zip(events, event_ids, strict=False):
            if isinstance(item, Emit):
                spec, event = item.topic, item.event
            else:
                spec, event = processor.output_for(item), item
            encoded_events.append(self._encode(spec, event, event_id, trace, traceparent))
        for into, encoded in encoded_events:
            into.append(encoded)
        self.sink_items.extend(sink_items)
