"""How many bytes a record takes on the wire, as the broker's size limit counts them.

A broker refuses a record batch over the topic's `max.message.bytes`. A
worker that learns this only from the broker's answer can do nothing but
fail the batch, again on every restart; one that sizes a record before
sending can shrink a dead letter or dead-letter an oversized output instead.
The figure is an upper bound: a batch's header plus the record with every
varint at its widest.
"""

from __future__ import annotations

from collections.abc import Sequence

BATCH_HEADER_BYTES = 61
"""Kafka's record batch header (magic v2)."""
RECORD_OVERHEAD_BYTES = 21
"""Length, attributes, timestamp delta and offset delta, each varint at its widest."""
BROKER_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588
"""The broker's `message.max.bytes` default: a topic's limit when nothing sets another."""


def varint_size(value: int) -> int:
    """Bytes of a zigzag varint, as Kafka writes lengths in a record."""
    zigzag = (value << 1) ^ (value >> 63)
    size = 1
    while zigzag >= 0x80:
        zigzag >>= 7
        size += 1
    return size


def _field_size(data: bytes | None) -> int:
    return 1 if data is None else varint_size(len(data)) + len(data)


def record_size(
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]],
) -> int:
    """Upper bound of a batch holding just this record, in bytes."""
    size = BATCH_HEADER_BYTES + RECORD_OVERHEAD_BYTES + _field_size(key) + _field_size(value)
    size += varint_size(len(headers))
    for name, header_value in headers:
        size += _field_size(name.encode("utf-8", "surrogateescape")) + _field_size(header_value)
    return size
