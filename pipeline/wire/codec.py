"""The wire format: UTF-8 key, a body in the topic's format, and a few standard headers.

Bodies are the event model dumped in pydantic's JSON mode (datetimes as ISO
strings, decimals as strings, UUIDs as strings), then packed with msgpack
(the default) or written as JSON (`TopicSpec(format="json")`), so any
language reads them without our code, and a decimal never turns into a
float on the way. A `raw` topic's bytes pass through untouched
(pipeline.wire.formats). The headers are ours to read; a record without
them (another team's producer) is read all the same.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

import msgpack
from pydantic import BaseModel, ValidationError

from pipeline.catalogue import TopicSpec
from pipeline.errors import (
    ConfigError,
    MissingKeyError,
    SchemaVersionError,
    UndecodableRecordError,
    WrongEventTypeError,
)
from pipeline.wire.avro_body import avro_writer, decode_avro
from pipeline.wire.change_events import decode_change
from pipeline.wire.formats import READ_ONLY, RawRecord
from pipeline.wire.headers import HEADER_EVENT_ID as HEADER_EVENT_ID
from pipeline.wire.headers import HEADER_EVENT_TYPE as HEADER_EVENT_TYPE
from pipeline.wire.headers import HEADER_PRODUCED_AT as HEADER_PRODUCED_AT
from pipeline.wire.headers import HEADER_TRACE_ID as HEADER_TRACE_ID
from pipeline.wire.headers import HEADER_TRACEPARENT as HEADER_TRACEPARENT
from pipeline.wire.headers import position_id as position_id
from pipeline.wire.json_body import decode_json
from pipeline.wire.json_schema_body import decode_json_schema, json_schema_writer
from pipeline.wire.protobuf_body import decode_protobuf, protobuf_writer
from pipeline.wire.validation import invalid_event
from pipeline.wire.versions import HEADER_SCHEMA_VERSION as HEADER_SCHEMA_VERSION
from pipeline.wire.versions import to_current

Headers = list[tuple[str, bytes | None]]


class EncodedEvent(NamedTuple):
    """An event ready for a record batch.

    Key and value may be None: a dead letter or a redrive keeps a null key or
    a tombstone as it was. `partition` pins a record that has no key to the
    partition it came from; otherwise the key's murmur2 partition is used.
    """

    key: bytes | None
    value: bytes | None
    headers: Headers
    event_id: str
    partition: int | None = None


new_tuple = tuple.__new__


class Payload(Protocol):
    """Anything with a key and a value: an encoded event, a fetched record."""

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...


def payload_size(event: Payload) -> int:
    """Key and value bytes: what a byte budget and a queue's bound count (headers aside)."""
    return len(event.key or b"") + len(event.value or b"")


def new_event_ids(count: int) -> list[str]:
    """Random (version 4) UUID strings, `count` at a time.

    One urandom call per batch instead of uuid.uuid4() per event: a third of
    the per-event encode cost in a bulk publish went to building UUID objects.
    """
    raw = bytearray(os.urandom(16 * count))
    ids = []
    for start in range(0, 16 * count, 16):
        raw[start + 6] = (raw[start + 6] & 0x0F) | 0x40
        raw[start + 8] = (raw[start + 8] & 0x3F) | 0x80
        h = raw[start : start + 16].hex()
        ids.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return ids


def derived_event_id(source_id: str, salt: str) -> str:
    """A UUID (version 5 layout) fixed by its source: the same input gives the same output id.

    Outputs of a redelivered record then carry the ids they had the first
    time, so a sink that upserts by event id stays idempotent.
    """
    h = hashlib.sha1(f"{source_id}|{salt}".encode()).hexdigest()
    variant = "89ab"[int(h[16], 16) & 0x3]
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{variant}{h[17:20]}-{h[20:32]}"


_UUID_FIELDS = (slice(0, 8), slice(9, 13), slice(14, 18), slice(19, 23), slice(24, 36))


def derived_event_ids(source_id: str, salts: list[int]) -> list[str]:
    """derived_event_id for a source's outputs, cheaply when the source id is a UUID.

    A worker derives one id per output on its hot path; rewriting a v4 UUID's
    version to 8 (custom) and XOR-ing its node with a per-(processor, output
    index) salt keeps ids unique and stable for a fraction of a hash's cost.
    Other source ids (not v4, e.g. another processor's outputs) are hashed.
    """
    return [derived_output_id(source_id, salt) for salt in salts]


def derived_output_id(source_id: str, salt: int) -> str:
    """One id of derived_event_ids."""
    if len(source_id) == 36 and source_id[14] == "4":
        try:
            node = int(source_id[24:], 16)
        except ValueError:
            return derived_event_id(source_id, str(salt))
        # Version 4 → 8 keeps outputs apart from sources; the 48-bit node XOR
        # a per-(processor, index) salt keeps them apart from each other.
        return f"{source_id[:14]}8{source_id[15:24]}{node ^ salt:012x}"
    return derived_event_id(source_id, str(salt))


def output_salt(processor: str, index: int) -> int:
    """The XOR salt of derived_event_ids for one processor's index-th output of an input."""
    return int.from_bytes(hashlib.sha1(f"{processor}:{index}".encode()).digest()[:6], "big")


def event_key(spec: TopicSpec[BaseModel], event: BaseModel) -> bytes:
    value = getattr(event, spec.key_field, None)
    if value is None or value == "":
        raise MissingKeyError(spec.name, spec.key_field)
    return str(value).encode()


def encode_event(
    spec: TopicSpec[BaseModel],
    event: BaseModel,
    *,
    event_id: str | None = None,
    trace_id: str | None = None,
    produced_at_ms: int | None = None,
    traceparent: bytes | None = None,
) -> EncodedEvent:
    """One event on the wire (encode_events does the work, for one or many)."""
    return encode_events(
        spec,
        [event],
        trace_id=trace_id,
        traceparent=traceparent,
        event_ids=[event_id] if event_id else None,
        produced_at_ms=produced_at_ms,
    )[0]


def encode_events(
    spec: TopicSpec[BaseModel],
    events: Sequence[BaseModel],
    *,
    trace_id: str | None = None,
    event_ids: Sequence[str] | None = None,
    produced_at_ms: int | None = None,
    traceparent: bytes | None = None,
) -> list[EncodedEvent]:
    """encode_event for a batch: one id draw, one clock read, shared header bytes.

    Every event is checked (type, key) as it is encoded, before anything is returned.
    """
    encoder = TopicEncoder(spec, produced_at_ms)
    ids = event_ids if event_ids is not None else new_event_ids(len(events))
    encode = encoder.encode
    return [
        encode(event, event_id, trace_id, traceparent)
        for event, event_id in zip(events, ids, strict=True)
    ]


_thread_state = threading.local()


def _pack_function() -> Callable[[Any], bytes]:
    """This thread's msgpack packer: one per batch would allocate its 256 KiB buffer each time."""
    pack: Callable[[Any], bytes] | None = getattr(_thread_state, "pack", None)
    if pack is None:
        pack = _thread_state.pack = msgpack.Packer(use_bin_type=True).pack
    return pack


class TopicEncoder:
    """Encodes events of one topic one at a time, its constant headers built once.

    A worker encodes each output as soon as its handler returns it, so the
    pydantic object is freed at once instead of living until the batch is
    published (a batch of live models cost the collector and the caches).
    Use an encoder in the thread that made it: it packs with that thread's packer.
    """

    __slots__ = ("_body", "_constant_headers", "_model", "_raw", "spec")

    def __init__(self, spec: TopicSpec[BaseModel], produced_at_ms: int | None = None) -> None:
        self.spec = spec
        self._model = spec.event_model
        produced = produced_at_ms if produced_at_ms is not None else time.time_ns() // 1_000_000
        self._constant_headers = (
            (HEADER_EVENT_TYPE, spec.event_type.encode()),
            (HEADER_SCHEMA_VERSION, str(spec.schema_version).encode()),
            (HEADER_PRODUCED_AT, str(produced).encode()),
        )
        self._raw = spec.format == "raw"
        self._body = _body_writer(spec)

    def check_type(self, event: BaseModel) -> None:
        if type(event) is not self._model:
            raise WrongEventTypeError(self.spec.name, self._model.__name__, type(event).__name__)

    def encode(
        self,
        event: BaseModel,
        event_id: str,
        trace_id: str | None = None,
        traceparent: bytes | None = None,
    ) -> EncodedEvent:
        if type(event) is not self._model:
            self.check_type(event)
        if self._raw:
            return self._raw_record(event, event_id, trace_id, traceparent)
        key = event_key(self.spec, event)
        type_header, version_header, produced_header = self._constant_headers
        headers: Headers = [
            type_header,
            version_header,
            (HEADER_EVENT_ID, event_id.encode()),
            produced_header,
        ]
        if trace_id:
            headers.append((HEADER_TRACE_ID, trace_id.encode()))
        if traceparent:
            headers.append((HEADER_TRACEPARENT, traceparent))
        # tuple.__new__ skips the namedtuple's Python-level __new__ (a tenth of
        # the encode time); the fields are the same.
        return new_tuple(EncodedEvent, (key, self._body(event), headers, event_id, None))

    def _raw_record(
        self,
        event: BaseModel,
        event_id: str,
        trace_id: str | None,
        traceparent: bytes | None,
    ) -> EncodedEvent:
        """A raw topic's record: the bytes given, and only the headers saying where it came from."""
        assert isinstance(event, RawRecord)
        headers: Headers = [(HEADER_EVENT_ID, event_id.encode())]
        if trace_id:
            headers.append((HEADER_TRACE_ID, trace_id.encode()))
        if traceparent:
            headers.append((HEADER_TRACEPARENT, traceparent))
        return EncodedEvent(event.key, event.value, headers, event_id)


def _body_writer(spec: TopicSpec[BaseModel]) -> Callable[[BaseModel], bytes]:
    serializer = spec.event_model.__pydantic_serializer__
    if spec.format in READ_ONLY:
        raise ConfigError(
            f"topic {spec.name!r} carries {spec.format} change events, which a pipeline reads "
            "and never writes; publish to a topic of another format"
        )
    if spec.format == "avro":
        return avro_writer(spec)
    if spec.format == "json_schema":
        return json_schema_writer(spec)
    if spec.format == "protobuf":
        return protobuf_writer(spec)
    if spec.format == "json":
        to_json = serializer.to_json
        return lambda event: to_json(event)
    to_python = serializer.to_python
    pack = _pack_function()
    return lambda event: pack(to_python(event, mode="json"))


def decode_value(
    spec: TopicSpec[BaseModel],
    value: bytes | None,
    *,
    partition: int | None = None,
    offset: int | None = None,
    version: int | None = None,
    key: bytes | None = None,
) -> BaseModel:
    """Bytes to a validated event, or an error that says where and why.

    `version`: the body's schema version when it is not the spec's (None: the
    spec's); older bodies are upcast first (pipeline.wire.versions). `key`
    matters only to a raw topic, whose event is the record's bytes.
    """
    if spec.format == "json":
        return decode_json(spec, value, partition, offset, version)
    if spec.format == "raw":
        return RawRecord(key=key, value=value)
    if spec.format in READ_ONLY:
        return decode_change(spec, value, key, partition, offset)
    if spec.format == "avro":
        return decode_avro(spec, value, partition, offset)
    if spec.format == "json_schema":
        return decode_json_schema(spec, value, partition, offset, version)
    if spec.format == "protobuf":
        return decode_protobuf(spec, value, partition, offset)
    # The success path is the hot path of every worker: nothing is built for
    # the error message until there is an error.
    try:
        fields = _unpack(value)
        if type(fields) is dict:
            if version is not None and version != spec.schema_version:
                fields = to_current(spec, fields, version, partition, offset)
            return spec.event_model.__pydantic_validator__.validate_python(fields)  # type: ignore[no-any-return]
    except ValidationError as exc:
        raise invalid_event(spec, exc, partition, offset) from exc
    except SchemaVersionError:
        raise
    except Exception as exc:  # msgpack raises several unrelated types
        where: dict[str, Any] = {"topic": spec.name, "partition": partition, "offset": offset}
        if value is None:
            raise UndecodableRecordError("record has no value (a tombstone?)", **where) from exc
        raise UndecodableRecordError(
            f"value is not msgpack ({type(exc).__name__}: {exc})", **where
        ) from exc
    where = {"topic": spec.name, "partition": partition, "offset": offset}
    raise UndecodableRecordError(
        f"value is msgpack {type(fields).__name__}, expected a map of fields", **where
    )


def _unpack(value: bytes | None) -> Any:
    # None raises TypeError here, reported as a tombstone by decode_value.
    return msgpack.unpackb(value, raw=False, strict_map_key=False)  # type: ignore[arg-type]


def header_value(headers: Sequence[tuple[str, bytes | None]], name: str) -> str | None:
    """A header as text (the last one when it repeats); None when absent or null.

    Never raises: bytes that are not UTF-8 come back with U+FFFD in their
    place, because the headers read this way (`dlq-*`, ids for reports) are
    for people, and a record's bytes are nobody's promise.
    """
    found = None
    for key, value in headers:
        if key == name:
            found = value
    return None if found is None else found.decode(errors="replace")


def record_copy(
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]],
    topic: str,
    partition: int,
    offset: int,
) -> EncodedEvent:
    """A stored record to publish again as it was: null stays null, keyless keeps its partition.

    Copies (replay into a topic, DLQ redrive) must be the original bytes; a
    null key turned into b"" would be partitioned as murmur2(b""), and an
    empty value is not a tombstone.
    """
    event_id = header_value(headers, HEADER_EVENT_ID) or position_id(topic, partition, offset)
    return EncodedEvent(key, value, list(headers), event_id, partition if key is None else None)
