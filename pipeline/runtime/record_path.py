"""What one record goes through before and after its handler: the per-record fault boundary.

Whatever a record's key, value and headers are (any bytes, or null), it
ends as outputs or as one DLQ record that fits the DLQ topic; nothing here
raises anything but the errors the worker turns into dead letters
(`EventDecodeError`, of which `EnvelopeError` is one, and
`OutputTooLargeError`). The steps are pure, so a property test drives them
with arbitrary records and no broker.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from pydantic import BaseModel

from pipeline.kafka.port import Record
from pipeline.kafka.record_size import BROKER_DEFAULT_MAX_MESSAGE_BYTES
from pipeline.processor import Processor
from pipeline.runtime.dead_letters import FailedRecord, dlq_record
from pipeline.wire.codec import EncodedEvent, decode_value
from pipeline.wire.envelope import Envelope, EnvelopePolicy, check_key, read_envelope
from pipeline.wire.formats import OWN_KEYS
from pipeline.wire.registry import REGISTRY_FORMATS, registry_for, schema_id_of
from pipeline.wire.versions import schema_version_of


class Opened(NamedTuple):
    """A record that passed the envelope checks and decoded into its event."""

    event: BaseModel
    envelope: Envelope


class RecordPath:
    def __init__(
        self,
        processor: Processor[Any],
        group_id: str,
        policy: EnvelopePolicy,
        limits: Mapping[str, int],
    ) -> None:
        self.processor = processor
        self.group_id = group_id
        self.policy = policy
        self.limits = limits
        """max.message.bytes per topic as the cluster has it; the broker default otherwise."""
        self._source = processor.source
        self._raw = processor.source.format in OWN_KEYS
        if self._raw:
            # A raw or change-event topic's records are whatever their writers
            # sent: their event-type is theirs, and their key is theirs too.
            policy = policy.model_copy(update={"wrong_event_type": "accept"})
            self.policy = policy
        self._event_type = processor.source.event_type.encode()
        self._schema_version = str(processor.source.schema_version).encode()
        self.dlq_limit = limits.get(processor.source.dlq_name, BROKER_DEFAULT_MAX_MESSAGE_BYTES)
        self.reads_registry = processor.source.format in REGISTRY_FORMATS
        """Whether a record's schema must be fetched (`fetch_schema`) before `open`."""

    async def fetch_schema(self, record: Record) -> None:
        """The writer's schema of a registry-format record, asked off the loop if not known yet.

        A registry that does not answer raises DependencyError: the record
        waits like one whose dependency is down, and is not dead-lettered.
        """
        schema_id = schema_id_of(record.value)
        if schema_id is not None:
            registry = registry_for(self._source)
            if not registry.knows(schema_id):
                await registry.fetch(schema_id)

    def open(self, record: Record) -> Opened:
        """Envelope, then body, then the key against the body; raises what dead-letters it."""
        envelope = read_envelope(
            record.topic,
            record.partition,
            record.offset,
            record.headers,
            self._event_type,
            self.policy,
        )
        source = self._source
        raw_version = envelope.schema_version
        version = None
        if raw_version is not None and raw_version != self._schema_version:
            version = schema_version_of(raw_version, record.topic, record.partition, record.offset)
        event = decode_value(
            source,
            record.value,
            partition=record.partition,
            offset=record.offset,
            version=version,
            key=record.key,
        )
        if self._raw:
            return Opened(event, envelope)
        check_key(
            record.topic,
            record.partition,
            record.offset,
            record.key,
            event,
            source.key_field,
            self.policy,
        )
        return Opened(event, envelope)

    def dead_letter(
        self, record: Record, error: BaseException, attempts: int, first_failure_ms: int
    ) -> EncodedEvent:
        """The record's DLQ copy with the reason, within the DLQ topic's limit."""
        return dlq_record(
            FailedRecord(
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                timestamp_ms=record.timestamp,
                key=record.key,
                value=record.value,
                headers=tuple(record.headers),
                error=error,
                attempts=attempts,
                first_failure_ms=first_failure_ms,
            ),
            self.group_id,
            self.processor.name,
            self.dlq_limit,
        )
