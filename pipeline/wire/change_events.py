"""Change events from a database, as Debezium writes them: the row, and what happened to it.

A topic declared `format="debezium"` (JSON, with or without the converter's
`schema`/`payload` wrapper) or `format="debezium_avro"` (Avro through the
schema registry) carries Debezium's envelope: `before`, `after`, `op`,
`source`, `ts_ms`. The handler gets a `Change` of the topic's model:

| `op` | `Change.op` | `Change.row` |
|---|---|---|
| `c` | `create` | `after` |
| `u` | `update` | `after` (`before` too, when the table logs it) |
| `r` | `read` (a snapshot) | `after` |
| `d` | `delete` | `before` |
| a tombstone (null value) | `delete` | None: only `key` says which row |
| `t` | `truncate` | None |

Debezium writes each delete twice (the `d` event, then a tombstone for
compaction), so a handler sees two deletes of one row and must not mind.
Debezium's defaults encode decimals as bytes and timestamps as epoch
micro- or nanoseconds; run the connector with `decimal.handling.mode=string`
and `time.precision.mode=connect` (milliseconds) for models with `Decimal`
and `datetime` fields. These topics are read here, never written.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from pipeline.catalogue import TopicSpec
from pipeline.errors import UndecodableRecordError
from pipeline.wire.avro_body import read_framed_avro
from pipeline.wire.validation import invalid_event

RowT = TypeVar("RowT", bound=BaseModel)
Operation = Literal["create", "update", "read", "delete", "truncate"]
OPERATIONS: dict[str, Operation] = {
    "c": "create",
    "u": "update",
    "r": "read",
    "d": "delete",
    "t": "truncate",
}


class Change(BaseModel, Generic[RowT]):
    """One row's change, from a `debezium` or `debezium_avro` topic.

    `row` is the row as it is now (after a create, an update or a snapshot
    read) or as it was (a delete); None for a tombstone or a truncate.
    """

    op: Operation
    row: RowT | None = None
    before: RowT | None = None
    key: Any = None
    """The record's key as Debezium wrote it (a JSON object of the primary key), parsed."""
    source: dict[str, Any] = {}
    """Where the change came from: connector, database, table, log position."""
    ts_ms: int | None = None


@functools.cache
def change_of(model: type[BaseModel]) -> type[Change[Any]]:
    return Change[model]  # type: ignore[valid-type]


def decode_change(
    spec: TopicSpec[BaseModel],
    value: bytes | None,
    key: bytes | None,
    partition: int | None,
    offset: int | None,
) -> BaseModel:
    """A Debezium record as a `Change` of the topic's model, or why it is not one."""
    where: dict[str, Any] = {"topic": spec.name, "partition": partition, "offset": offset}
    parsed_key = _json_or_none(key)
    if value is None:
        return change_of(spec.event_model)(op="delete", key=parsed_key)
    envelope = (
        _avro_envelope(spec, value, partition, offset)
        if spec.format == "debezium_avro"
        else (_json_envelope(value, where))
    )
    if not isinstance(envelope, dict) or "op" not in envelope:
        raise UndecodableRecordError(
            "value is not a Debezium change event (no `op`; expected before, after, op, "
            "source, ts_ms)",
            **where,
        )
    operation = OPERATIONS.get(str(envelope["op"]))
    if operation is None:
        raise UndecodableRecordError(
            f"Debezium op {envelope['op']!r} is not one of {', '.join(OPERATIONS)}", **where
        )
    row = envelope.get("before") if operation == "delete" else envelope.get("after")
    try:
        return change_of(spec.event_model).model_validate(
            {
                "op": operation,
                "row": row,
                "before": envelope.get("before") if operation == "update" else None,
                "key": parsed_key,
                "source": envelope.get("source") or {},
                "ts_ms": envelope.get("ts_ms"),
            }
        )
    except ValidationError as exc:
        raise invalid_event(spec, exc, partition, offset) from exc


def _json_envelope(value: bytes, where: dict[str, Any]) -> Any:
    try:
        document = json.loads(value)
    except ValueError as exc:
        raise UndecodableRecordError(f"value is not JSON ({exc})", **where) from exc
    return _unwrapped(document)


def _avro_envelope(
    spec: TopicSpec[BaseModel], value: bytes, partition: int | None, offset: int | None
) -> Any:
    return read_framed_avro(spec, value, partition, offset, resolve=False)[1]


def _json_or_none(key: bytes | None) -> Any:
    if key is None:
        return None
    try:
        document = json.loads(key)
    except ValueError:
        return key.decode(errors="replace")
    return _unwrapped(document)


def _unwrapped(document: Any) -> Any:
    """The payload of Kafka Connect's JsonConverter wrapper (schemas.enable=true), or as is."""
    if isinstance(document, dict) and "payload" in document and "schema" in document:
        return document["payload"]
    return document
