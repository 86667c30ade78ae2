"""Request bodies: one JSON object, or a batch as a JSON array, NDJSON or msgpack."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

import msgpack

from pipeline.gateway.errors import GatewayError

JSON = "application/json"
NDJSON = ("application/x-ndjson", "application/ndjson")
MSGPACK = ("application/msgpack", "application/x-msgpack")


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def check_size(body: bytes, limit: int) -> None:
    if len(body) > limit:
        raise GatewayError(
            413,
            "body_too_large",
            f"the body is larger than the limit of {limit:,} bytes "
            "(PIPELINE_GATEWAY__MAX_BODY_BYTES): split it into smaller batches",
        )


def _not_json(constant: str) -> Any:
    """Python's parser takes NaN and Infinity; JSON (RFC 8259) has neither."""
    raise json.JSONDecodeError(f"{constant} is not a JSON number", constant, 0)


def _loads(text: bytes) -> Any:
    return json.loads(text, parse_constant=_not_json)


def _json(body: bytes) -> Any:
    try:
        return _loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GatewayError(400, "malformed_body", f"the body is not valid JSON: {exc}") from None


def _as_json(value: Any, where: str) -> Any:
    """A msgpack value as the JSON the event schema describes: a timestamp becomes its
    RFC 3339 text; what JSON has no word for is refused, naming where it sits."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _as_json(inner, f"{where}.{key}") for key, inner in value.items()}
    if isinstance(value, list):
        return [_as_json(inner, f"{where}.{index}") for index, inner in enumerate(value)]
    if value is None or isinstance(value, str | int | bool):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    kind = {bytes: "binary", float: "non-finite float"}.get(type(value), type(value).__name__)
    raise GatewayError(
        400,
        "malformed_body",
        f"{where} is a msgpack {kind} value, which the event schema (JSON) has no type for: "
        "send text, numbers, booleans, nil, arrays, maps and timestamps",
    )


def parse_single(body: bytes, content_type: str | None) -> dict[str, Any]:
    kind = media_type(content_type)
    if kind != JSON:
        raise GatewayError(
            415,
            "unsupported_media_type",
            f"send one event as {JSON}, not {kind or 'no content type'} "
            "(batches also take NDJSON and msgpack at /events:batch)",
        )
    event = _json(body)
    if not isinstance(event, dict):
        raise GatewayError(400, "malformed_body", "the body must be one JSON object (an event)")
    return event


def parse_batch(body: bytes, content_type: str | None, max_events: int) -> list[Any]:
    kind = media_type(content_type)
    if kind == JSON:
        events = _json(body)
        if not isinstance(events, list):
            raise GatewayError(400, "malformed_body", "a JSON batch must be an array of events")
    elif kind in NDJSON:
        events = []
        for number, line in enumerate(body.splitlines(), start=1):
            if line.strip():
                try:
                    events.append(_loads(line))
                except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                    raise GatewayError(
                        400, "malformed_body", f"NDJSON line {number} is not valid JSON: {exc}"
                    ) from None
    elif kind in MSGPACK:
        try:
            events = msgpack.unpackb(body, raw=False, timestamp=3)
        except Exception as exc:  # noqa: BLE001 - msgpack raises several unrelated types
            raise GatewayError(
                400, "malformed_body", f"the body is not valid msgpack: {exc}"
            ) from None
        if not isinstance(events, list):
            raise GatewayError(400, "malformed_body", "a msgpack batch must be an array of events")
    else:
        raise GatewayError(
            415,
            "unsupported_media_type",
            f"a batch is {JSON} (an array), {NDJSON[0]} or {MSGPACK[0]}, "
            f"not {kind or 'no content type'}",
        )
    if not events:
        raise GatewayError(400, "malformed_body", "the batch is empty")
    if len(events) > max_events:
        raise GatewayError(
            413,
            "batch_too_large",
            f"the batch has {len(events):,} events; the limit is {max_events:,} "
            "(PIPELINE_GATEWAY__MAX_BATCH_EVENTS)",
        )
    if kind in MSGPACK:
        return [_as_json(event, f"event {index}") for index, event in enumerate(events)]
    return events
