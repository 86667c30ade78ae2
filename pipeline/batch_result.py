"""What handling one batch of a partition produced: outputs, sink items, dead letters.

Output ids are derived from the source record's id, so a redelivered record
yields outputs with the ids they had the first time and downstream upserts
by event id stay idempotent. Outputs are encoded as they are collected: the
batch holds bytes, not live models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from aiokafka.structs import ConsumerRecord
from pydantic import BaseModel

from pipeline.catalogue import TopicSpec
from pipeline.codec import (
    EncodedEvent,
    TopicEncoder,
    derived_event_ids,
    derived_output_id,
    ids_of,
    output_salt,
)
from pipeline.processor import Emit, Processor, ToSink

Record: TypeAlias = ConsumerRecord[bytes, bytes]


@dataclass
class BatchResult:
    outputs: dict[str, tuple[TopicEncoder, list[EncodedEvent]]] = field(default_factory=dict)
    """Per output topic: its encoder and the batch's encoded events, in handling order."""
    sink_items: list[Any] = field(default_factory=list)
    dead_letters: list[EncodedEvent] = field(default_factory=list)
    processed: int = 0

    def add_output(
        self, spec: TopicSpec, event: BaseModel, event_id: str, trace: str | None
    ) -> None:
        entry = self.outputs.get(spec.name)
        if entry is None:
            entry = (TopicEncoder(spec), [])
            self.outputs[spec.name] = entry
        entry[1].append(entry[0].encode(event, event_id, trace))

    def collect(self, outcome: Any, record: Record, processor: Processor, salts: list[int]) -> None:
        """Add what a handler returned for `record`; `salts` is the worker's id-salt cache."""
        if outcome is None:
            return
        if isinstance(outcome, ToSink):
            self.sink_items.append(outcome.item)
            return
        source_id, trace = ids_of(record.headers)
        if source_id is None:
            source_id = f"{record.topic}/{record.partition}/{record.offset}"
        if isinstance(outcome, BaseModel):
            # The common case, one output event: no lists, one id.
            if not salts:
                salts.append(output_salt(processor.name, 0))
            event_id = derived_output_id(source_id, salts[0])
            self.add_output(processor.output_for(outcome), outcome, event_id, trace)
            return
        items: Sequence[Any] = (outcome,) if isinstance(outcome, Emit) else outcome
        events = []
        for item in items:
            if isinstance(item, ToSink):
                self.sink_items.append(item.item)
            else:
                events.append(item)
        while len(salts) < len(events):
            salts.append(output_salt(processor.name, len(salts)))
        event_ids = derived_event_ids(source_id, salts[: len(events)])
        for item, event_id in zip(events, event_ids, strict=False):
            if isinstance(item, Emit):
                spec, event = item.topic, item.event
            else:
                spec, event = processor.output_for(item), item
            self.add_output(spec, event, event_id, trace)
