"""The headers this project writes on every record, and the id of a record that has none.

Their own module so that what reads only headers (the envelope, the
settings that name its policy) does not load the body codecs.
"""

from __future__ import annotations

HEADER_EVENT_TYPE = "event-type"
HEADER_EVENT_ID = "event-id"
HEADER_PRODUCED_AT = "produced-at"
HEADER_TRACE_ID = "trace-id"
HEADER_TRACEPARENT = "traceparent"
"""W3C trace context of the span that produced the record (pipeline.telemetry.tracing)."""


def position_id(topic: str, partition: int, offset: int) -> str:
    """The id of a record without a usable `event-id`: fixed by where it is stored."""
    return f"{topic}/{partition}/{offset}"
