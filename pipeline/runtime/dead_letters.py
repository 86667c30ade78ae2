"""Dead-letter records.

A DLQ record is the original record, byte for byte (key, value, headers,
null kept null), plus `dlq-*` headers that say what failed, where and how
often, so that `dlq inspect` can explain it and `dlq redrive` can put it
back unchanged.

A DLQ record must fit its topic's `max.message.bytes`, or the worker could
neither keep the record nor move past it. DLQ topics get more room than
their source (pipeline.catalogue), and a copy that still does not fit is
shrunk, in this order, until it does:

1. the traceback is cut to its last 500 characters, then left out;
2. the value is replaced by a reference: a small JSON document, with
   `dlq-value-omitted` (the original size) and `dlq-value-sha256` headers;
   the `dlq-source-*` headers say where the original still is;
3. the original headers are left out (`dlq-headers-omitted`: how many);
4. the key is left out (`dlq-key-omitted`: its size).
"""

from __future__ import annotations

import hashlib
import json
import time
import traceback as traceback_module
from dataclasses import dataclass

from pipeline.kafka.record_size import record_size
from pipeline.wire import dlq_headers as dlq
from pipeline.wire.codec import HEADER_EVENT_ID, EncodedEvent, Headers, header_value, position_id

TRACEBACK_LIMIT = 4000
TRACEBACK_SHORT = 500
MESSAGE_LIMIT = 1000


@dataclass(frozen=True)
class FailedRecord:
    """Everything the DLQ record needs about the source record and its failure."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    error: BaseException
    attempts: int
    first_failure_ms: int

    @property
    def where(self) -> str:
        return f"{self.topic}-{self.partition}@{self.offset}"


def describe_error(error: BaseException) -> tuple[str, str]:
    """(message, traceback) of an error, whatever its __str__ does."""
    try:
        message = str(error)
    except Exception as exc:  # noqa: BLE001 - a user's exception may fail to print itself
        message = f"(the error's message could not be read: {type(exc).__name__})"
    try:
        parts = traceback_module.format_exception(type(error), error, error.__traceback__)
        # A long message would push the frames out of the kept tail: shorten it here.
        trace = "".join(
            part if len(part) <= MESSAGE_LIMIT else part[:MESSAGE_LIMIT] + "…\n" for part in parts
        )
    except Exception as exc:  # noqa: BLE001 - same: never let describing an error raise
        trace = f"(the traceback could not be formatted: {type(exc).__name__})"
    return message, trace


def _text(value: str) -> bytes:
    return value.encode("utf-8", "backslashreplace")


def dlq_record(failed: FailedRecord, group: str, processor: str, limit_bytes: int) -> EncodedEvent:
    """The DLQ copy of a failed record, shrunk by the module's rule to fit `limit_bytes`."""
    message, trace = describe_error(failed.error)
    if len(trace) > TRACEBACK_LIMIT:
        trace = "…" + trace[-TRACEBACK_LIMIT:]

    def about(traceback_text: str) -> Headers:
        return [
            (dlq.ERROR_TYPE, _text(type(failed.error).__name__)),
            (dlq.ERROR_MESSAGE, _text(message[:MESSAGE_LIMIT])),
            (dlq.TRACEBACK, _text(traceback_text)),
            (dlq.SOURCE_TOPIC, _text(failed.topic)),
            (dlq.SOURCE_PARTITION, str(failed.partition).encode()),
            (dlq.SOURCE_OFFSET, str(failed.offset).encode()),
            (dlq.SOURCE_TIMESTAMP, str(failed.timestamp_ms).encode()),
            (dlq.GROUP, _text(group)),
            (dlq.PROCESSOR, _text(processor)),
            (dlq.ATTEMPTS, str(failed.attempts).encode()),
            (dlq.FIRST_FAILURE_AT, str(failed.first_failure_ms).encode()),
        ]

    key, value = failed.key, failed.value
    original: Headers = list(failed.headers)
    extra = about(trace)
    event_id = header_value(failed.headers, HEADER_EVENT_ID) or position_id(
        failed.topic, failed.partition, failed.offset
    )

    def fits() -> bool:
        return record_size(key, value, original + extra) <= limit_bytes

    if not fits() and len(trace) > TRACEBACK_SHORT:
        extra = about("…" + trace[-TRACEBACK_SHORT:])
    if not fits():
        extra = about("(left out: the record would not fit the DLQ topic's max.message.bytes)")
    if not fits() and value is not None:
        digest = hashlib.sha256(value).hexdigest()
        extra += [
            (dlq.VALUE_OMITTED, str(len(value)).encode()),
            (dlq.VALUE_SHA256, digest.encode()),
        ]
        value = json.dumps(
            {
                "omitted": "the value did not fit the DLQ topic's max.message.bytes",
                "size": len(value),
                "sha256": digest,
                "source": failed.where,
            }
        ).encode()
    if not fits() and original:
        extra.append((dlq.HEADERS_OMITTED, str(len(original)).encode()))
        original = []
    if not fits() and key is not None:
        extra.append((dlq.KEY_OMITTED, str(len(key)).encode()))
        key = None
    # Without a key the DLQ record stays on its source's partition number.
    partition = failed.partition if key is None else None
    return EncodedEvent(key, value, original + extra, event_id, partition)


def now_ms() -> int:
    return time.time_ns() // 1_000_000
