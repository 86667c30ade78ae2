"""Protobuf message classes for the tests, built as protoc's generated code builds them.

protoc is not needed: a generated module registers a FileDescriptorProto
in a descriptor pool and asks the message factory for the classes, which
is what this does with a file written out in code.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_FIELD = descriptor_pb2.FieldDescriptorProto


def _file() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(
        name="tests/orders.proto", package="tests.orders", syntax="proto3"
    )
    note = proto.message_type.add(name="Note")
    note.field.add(name="text", number=1, type=_FIELD.TYPE_STRING, label=_FIELD.LABEL_OPTIONAL)
    order = proto.message_type.add(name="OrderProto")
    for number, (name, kind, label) in enumerate(
        [
            ("order_id", _FIELD.TYPE_STRING, _FIELD.LABEL_OPTIONAL),
            ("amount", _FIELD.TYPE_STRING, _FIELD.LABEL_OPTIONAL),
            ("quantity", _FIELD.TYPE_INT64, _FIELD.LABEL_OPTIONAL),
            ("placed_at", _FIELD.TYPE_STRING, _FIELD.LABEL_OPTIONAL),
            ("tags", _FIELD.TYPE_STRING, _FIELD.LABEL_REPEATED),
        ],
        start=1,
    ):
        order.field.add(name=name, number=number, type=kind, label=label)
    keyed = proto.message_type.add(name="KeyedProto")
    for number, (name, kind) in enumerate(
        [
            ("key", _FIELD.TYPE_STRING),
            ("seq", _FIELD.TYPE_INT64),
            ("mode", _FIELD.TYPE_STRING),
            ("payload", _FIELD.TYPE_STRING),
        ],
        start=1,
    ):
        keyed.field.add(name=name, number=number, type=kind, label=_FIELD.LABEL_OPTIONAL)
    return proto


_pool = descriptor_pool.DescriptorPool()
_pool.Add(_file())
Note: Any = message_factory.GetMessageClass(_pool.FindMessageTypeByName("tests.orders.Note"))
OrderProto: Any = message_factory.GetMessageClass(
    _pool.FindMessageTypeByName("tests.orders.OrderProto")
)
KeyedProto: Any = message_factory.GetMessageClass(
    _pool.FindMessageTypeByName("tests.orders.KeyedProto")
)
