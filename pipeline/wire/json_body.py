"""JSON bodies, read exactly: what another team's service writes.

pydantic's own JSON parser is the fast path, but it reads a number as a
float before a `Decimal` field sees it (12345678901234567890.123456789 came
back as 12345678901234567000), so a model with a decimal anywhere, and a
body to upcast, go through `json.loads` with exact decimals instead.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ValidationError

from pipeline.catalogue import TopicSpec
from pipeline.errors import UndecodableRecordError
from pipeline.wire.formats import model_mentions
from pipeline.wire.validation import invalid_event
from pipeline.wire.versions import to_current

_EXACT = json.JSONDecoder(parse_float=Decimal)
"""One decoder for every record: json.loads with parse_float builds a new one per call."""


def decode_json(
    spec: TopicSpec[BaseModel],
    value: bytes | None,
    partition: int | None,
    offset: int | None,
    version: int | None,
) -> BaseModel:
    """A validated event from a JSON object, or the error that says why it is not one."""
    validator = spec.event_model.__pydantic_validator__
    where: dict[str, Any] = {"topic": spec.name, "partition": partition, "offset": offset}
    if value is None:
        raise UndecodableRecordError("record has no value (a tombstone?)", **where)
    upcast = version is not None and version != spec.schema_version
    try:
        if not upcast and not needs_exact_decimals(spec.event_model):
            return validator.validate_json(value)  # type: ignore[no-any-return]
        try:
            fields = _EXACT.decode(value.decode())
        except (UnicodeDecodeError, ValueError) as exc:
            raise UndecodableRecordError(f"value is not JSON ({exc})", **where) from exc
        if type(fields) is not dict:
            raise UndecodableRecordError(
                f"value is JSON {json_kind(fields)}, expected an object of fields", **where
            )
        if upcast:
            assert version is not None
            fields = to_current(spec, fields, version, partition, offset)
        return validator.validate_python(fields)  # type: ignore[no-any-return]
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            raise UndecodableRecordError(f"value is not JSON ({first['msg']})", **where) from exc
        if first["loc"] == () and first["type"] == "model_type":
            kind = json_kind(first["input"])
            raise UndecodableRecordError(
                f"value is JSON {kind}, expected an object of fields", **where
            ) from exc
        raise invalid_event(spec, exc, partition, offset) from exc


def needs_exact_decimals(model: type[BaseModel]) -> bool:
    """Whether the model has a `Decimal` anywhere (nested models, lists, unions included)."""
    return model_mentions(model, "decimal")


def json_kind(value: Any) -> str:
    """What a JSON document is, in JSON's words, for an error message."""
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"
