"""A record's envelope (key and standard headers), read without trusting a byte of it.

Records come from any producer: ours, another language's client, a script.
A header that is not UTF-8, a null key or a key that disagrees with the body
must end as a clear dead letter or a documented repair, never as an
exception that stops the partition. What happens to each fault is a policy
(`EnvelopePolicy`, `PIPELINE_ENVELOPE__*`):

| fault | default | to relax (`PIPELINE_ENVELOPE__…`) |
|---|---|---|
| `event-type` names another type | dead-lettered (`EnvelopeError`) | `WRONG_EVENT_TYPE=accept` |
| Kafka key is not the body's key field | dead-lettered | `KEY_MISMATCH=accept` |
| `event-id` missing, null or empty | id from topic/partition/offset | (`MISSING_EVENT_ID=dlq`) |
| `event-id` not UTF-8 | dead-lettered | `MALFORMED_EVENT_ID=derive` |
| `trace-id` not UTF-8 | dropped (outputs carry none) | (`MALFORMED_TRACE_ID=dlq`) |

A key mismatch includes a null key and a key that is not UTF-8.
A missing `event-type` is accepted: the body is still validated against the
topic's model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

from pydantic import BaseModel
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.errors import EnvelopeError
from pipeline.wire.headers import (
    HEADER_EVENT_ID,
    HEADER_EVENT_TYPE,
    HEADER_TRACE_ID,
    HEADER_TRACEPARENT,
    position_id,
)
from pipeline.wire.versions import HEADER_SCHEMA_VERSION

SHOWN_BYTES = 80


class EnvelopePolicy(BaseSettings):
    """What a worker does with each envelope fault (see the module docstring's table)."""

    model_config = SettingsConfigDict(extra="forbid")

    wrong_event_type: Literal["dlq", "accept"] = "dlq"
    key_mismatch: Literal["dlq", "accept"] = "dlq"
    missing_event_id: Literal["derive", "dlq"] = "derive"
    malformed_event_id: Literal["dlq", "derive"] = "dlq"
    malformed_trace_id: Literal["drop", "dlq"] = "drop"


class Envelope(NamedTuple):
    """What the worker takes from a record's headers: ids, and any repair made."""

    event_id: str
    trace_id: str | None
    repair: str | None
    """Set when the policy repaired the envelope: `event-id derived`, `trace-id dropped`."""
    traceparent: bytes | None = None
    """The producing span's W3C context, raw: checked only when a span is started from it."""
    schema_version: bytes | None = None
    """The body's `schema-version`, raw: parsed only when it is not the topic's own."""


def shown(data: bytes | None) -> str:
    """Bytes for an error message: text when they are UTF-8, else their repr, shortened."""
    if data is None:
        return "null"
    try:
        text = repr(data.decode())
    except UnicodeDecodeError:
        text = repr(data)
    return text if len(text) <= SHOWN_BYTES else text[: SHOWN_BYTES - 1] + "…"


def read_envelope(
    topic: str,
    partition: int,
    offset: int,
    headers: Sequence[tuple[str, bytes | None]],
    event_type: bytes,
    policy: EnvelopePolicy,
) -> Envelope:
    """The record's ids; EnvelopeError when the policy dead-letters a fault.

    One scan of the headers (it runs for every record); the last value wins
    when a header repeats.
    """
    raw_id = raw_trace = raw_type = traceparent = raw_version = None
    for name, value in headers:
        if name == HEADER_EVENT_ID:
            raw_id = value
        elif name == HEADER_TRACE_ID:
            raw_trace = value
        elif name == HEADER_EVENT_TYPE:
            raw_type = value
        elif name == HEADER_TRACEPARENT:
            traceparent = value
        elif name == HEADER_SCHEMA_VERSION:
            raw_version = value

    if raw_type and raw_type != event_type and policy.wrong_event_type == "dlq":
        raise _fault(
            f"event-type {shown(raw_type)} is not this topic's type {event_type.decode()!r}; "
            "publish it to the topic that carries that type",
            HEADER_EVENT_TYPE,
            "WRONG_EVENT_TYPE=accept",
            topic,
            partition,
            offset,
        )
    repair = None
    event_id = None
    if raw_id:
        try:
            event_id = raw_id.decode()
        except UnicodeDecodeError:
            if policy.malformed_event_id == "dlq":
                raise _not_utf8(
                    raw_id, HEADER_EVENT_ID, "MALFORMED_EVENT_ID=derive", topic, partition, offset
                ) from None
    elif policy.missing_event_id == "dlq":
        raise _fault(
            "no event-id header; publish events with one",
            HEADER_EVENT_ID,
            "MISSING_EVENT_ID=derive",
            topic,
            partition,
            offset,
        )
    if event_id is None:
        event_id = position_id(topic, partition, offset)
        repair = "event-id derived"
    trace_id = None
    if raw_trace:
        try:
            trace_id = raw_trace.decode()
        except UnicodeDecodeError:
            if policy.malformed_trace_id == "dlq":
                raise _not_utf8(
                    raw_trace, HEADER_TRACE_ID, "MALFORMED_TRACE_ID=drop", topic, partition, offset
                ) from None
            repair = "trace-id dropped" if repair is None else repair + ", trace-id dropped"
    return Envelope(event_id, trace_id, repair, traceparent, raw_version)


def _fault(
    reason: str, header: str, relax: str, topic: str, partition: int, offset: int
) -> EnvelopeError:
    return EnvelopeError(
        f"{reason} (or set PIPELINE_ENVELOPE__{relax})",
        field=f"header {header}",
        topic=topic,
        partition=partition,
        offset=offset,
    )


def _not_utf8(
    raw: bytes, header: str, relax: str, topic: str, partition: int, offset: int
) -> EnvelopeError:
    reason = f"{header} {shown(raw)} is not UTF-8; fix the producer"
    return _fault(reason, header, relax, topic, partition, offset)


def check_key(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    event: BaseModel,
    key_field: str,
    policy: EnvelopePolicy,
) -> None:
    """EnvelopeError when the Kafka key is not the body's key field, as producers write it.

    Such a record sits on the partition of another key (or a random one), so
    handling it would break per-key order without anyone noticing.
    """
    if policy.key_mismatch == "accept":
        return
    body_key = getattr(event, key_field, None)
    expected = None if body_key is None else str(body_key).encode()
    if key == expected:
        return
    raise EnvelopeError(
        f"the Kafka key {shown(key)} is not the body's {key_field!r} "
        f"({shown(expected)}), so the record may sit on another key's partition; "
        "publish it keyed by that field (or set PIPELINE_ENVELOPE__KEY_MISMATCH=accept)",
        field="key",
        topic=topic,
        partition=partition,
        offset=offset,
    )
