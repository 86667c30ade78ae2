"""Protobuf bodies in Confluent's framing, through a topic's generated message class.

`TopicSpec(..., format="protobuf", protobuf_message=OrderProto)`: the model
stays the description of the event, and the generated class says how it
travels. Fields are matched by name through protobuf's JSON mapping (a
`Decimal` field is a `string` in the .proto, a `datetime` a
`google.protobuf.Timestamp` or an RFC 3339 `string`). After Confluent's
five bytes comes the message's index path in its .proto file (zigzag
varints, `0` alone for the first message), then the message; the schema
registered is the file's descriptor, base64, as Confluent's serializer
registers it. A .proto that imports others (other than Google's well-known
types) is not supported yet: the registry would need each import as a
reference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from pipeline.catalogue import TopicSpec
from pipeline.errors import UndecodableRecordError
from pipeline.wire.registry import FRAMING_BYTES, framed_writer, registry_for
from pipeline.wire.validation import invalid_event


def index_path(descriptor: Any) -> list[int]:
    """Where a message is declared in its file: [top-level index, nested index, ...]."""
    path: list[int] = []
    current = descriptor
    while current.containing_type is not None:
        parent = current.containing_type
        path.insert(0, list(parent.nested_types).index(current))
        current = parent
    path.insert(0, list(current.file.message_types_by_name).index(current.name))
    return path


def index_bytes(path: list[int]) -> bytes:
    if path == [0]:
        return b"\x00"
    return b"".join(_zigzag_varint(n) for n in [len(path), *path])


def _zigzag_varint(value: int) -> bytes:
    number = (value << 1) ^ (value >> 63)
    out = bytearray()
    while number > 0x7F:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    shift = number = 0
    while True:
        if at >= len(data):
            raise ValueError("the message index ends before its varint does")
        byte = data[at]
        at += 1
        number |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (number >> 1) ^ -(number & 1), at
        shift += 7


def skip_index_path(data: bytes, at: int) -> int:
    """The offset of the message after the index path that starts at `at`."""
    count, at = _read_varint(data, at)
    for _ in range(count):
        _, at = _read_varint(data, at)
    return at


def protobuf_writer(spec: TopicSpec[BaseModel]) -> Callable[[BaseModel], bytes]:
    from google.protobuf import json_format

    registry = registry_for(spec)
    message_class = spec.protobuf_message
    indexes = index_bytes(index_path(message_class.DESCRIPTOR))
    dump = spec.event_model.__pydantic_serializer__.to_python

    def encode(event: BaseModel) -> bytes:
        message = json_format.ParseDict(dump(event, mode="json"), message_class())
        body: bytes = message.SerializeToString()
        return registry.writer(spec).prefix + indexes + body

    return encode


def decode_protobuf(
    spec: TopicSpec[BaseModel], value: bytes | None, partition: int | None, offset: int | None
) -> BaseModel:
    from google.protobuf import json_format

    schema_id, _ = framed_writer(spec, value, partition, offset)  # an id the registry has
    assert value is not None
    try:
        start = skip_index_path(value, FRAMING_BYTES)
        message = spec.protobuf_message.FromString(value[start:])
    except Exception as exc:  # protobuf's DecodeError, and a truncated index path
        raise UndecodableRecordError(
            f"value is not a {spec.protobuf_message.DESCRIPTOR.full_name} of schema id "
            f"{schema_id} ({type(exc).__name__}: {exc})",
            topic=spec.name,
            partition=partition,
            offset=offset,
        ) from exc
    fields = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    try:
        return spec.event_model.__pydantic_validator__.validate_python(fields)  # type: ignore[no-any-return]
    except ValidationError as exc:
        raise invalid_event(spec, exc, partition, offset) from exc
