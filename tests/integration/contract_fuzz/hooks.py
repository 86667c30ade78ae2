"""Schemathesis hooks (SCHEMATHESIS_HOOKS): the two other batch encodings the document names.

The document gives NDJSON and msgpack batches the JSON batch's schema
(an array of events); the fuzzer needs to know how to write that array
as each: one JSON document per line, or one msgpack array.
"""

from __future__ import annotations

import json
from typing import Any

import msgpack
import schemathesis


@schemathesis.serializer("application/x-ndjson")
def as_ndjson(_context: Any, value: Any) -> bytes:
    items = value if isinstance(value, list) else [value]
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


@schemathesis.serializer("application/msgpack")
def as_msgpack(_context: Any, value: Any) -> bytes:
    packed: bytes = msgpack.packb(_within_msgpack(value))
    return packed


def _within_msgpack(value: Any) -> Any:
    """msgpack has no integer past 64 bits: the fuzzer's larger ones (all schema-violating,
    the document bounds integers to int64) go as the nearest float, still out of bounds."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and not -(2**63) <= value < 2**64:
        return float(value)
    if isinstance(value, list):
        return [_within_msgpack(item) for item in value]
    if isinstance(value, dict):
        return {key: _within_msgpack(item) for key, item in value.items()}
    return value
