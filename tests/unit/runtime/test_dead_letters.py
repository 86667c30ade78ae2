"""DLQ copies: byte for byte, null kept null, and always within the DLQ topic's limit."""

from __future__ import annotations

import hashlib
import json

import pytest

from pipeline.kafka.record_size import record_size
from pipeline.runtime.dead_letters import FailedRecord, dlq_record
from pipeline.wire.codec import header_value
from pipeline.wire.dlq_headers import HEADERS_OMITTED, KEY_OMITTED, VALUE_OMITTED, VALUE_SHA256


def failed(
    key: bytes | None = b"k",
    value: bytes | None = b"v",
    headers: tuple[tuple[str, bytes | None], ...] = (("event-id", b"e-1"),),
    error: BaseException | None = None,
) -> FailedRecord:
    if error is None:
        try:
            raise ValueError("boom " * 2000)  # a long message and a real traceback
        except ValueError as exc:
            error = exc
    return FailedRecord("orders", 3, 17, 1_700_000_000_000, key, value, headers, error, 2, 5)


def test_a_dead_letter_is_the_original_plus_what_failed_where() -> None:
    dead = dlq_record(failed(), "group-a", "enrich", 1_000_000)
    assert (dead.key, dead.value) == (b"k", b"v")
    assert dead.headers[0] == ("event-id", b"e-1")
    assert header_value(dead.headers, "dlq-error-type") == "ValueError"
    assert len(header_value(dead.headers, "dlq-error-message") or "") == 1000
    assert header_value(dead.headers, "dlq-source-topic") == "orders"
    assert header_value(dead.headers, "dlq-source-partition") == "3"
    assert header_value(dead.headers, "dlq-source-offset") == "17"
    assert header_value(dead.headers, "dlq-processor") == "enrich"
    assert "Traceback" in (header_value(dead.headers, "dlq-traceback") or "")
    assert dead.event_id == "e-1"
    assert dead.partition is None  # keyed: partitioned by its key


def test_null_key_value_and_headers_stay_null_and_a_keyless_copy_keeps_its_partition() -> None:
    dead = dlq_record(failed(key=None, value=None, headers=(("trace-id", None),)), "g", "p", 10**6)
    assert dead.key is None
    assert dead.value is None
    assert dead.headers[0] == ("trace-id", None)
    assert dead.partition == 3
    assert dead.event_id == "orders/3/17"


def test_an_error_whose_message_cannot_be_read_still_dead_letters() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    dead = dlq_record(failed(error=Unprintable()), "g", "p", 10**6)
    assert "could not be read" in (header_value(dead.headers, "dlq-error-message") or "")


def test_the_traceback_is_cut_before_anything_else() -> None:
    full = dlq_record(failed(), "g", "p", 10**6)
    size = record_size(full.key, full.value, full.headers)
    cut = dlq_record(failed(), "g", "p", size - 100)
    assert record_size(cut.key, cut.value, cut.headers) <= size - 100
    assert cut.value == b"v"
    assert len(header_value(cut.headers, "dlq-traceback") or "") <= 501


def test_a_value_over_the_limit_is_replaced_by_a_reference() -> None:
    value = bytes(range(256)) * 400  # 102,400 bytes
    dead = dlq_record(failed(value=value), "g", "p", 64 * 1024)
    assert record_size(dead.key, dead.value, dead.headers) <= 64 * 1024
    assert header_value(dead.headers, VALUE_OMITTED) == str(len(value))
    assert header_value(dead.headers, VALUE_SHA256) == hashlib.sha256(value).hexdigest()
    assert dead.value is not None
    reference = json.loads(dead.value)
    assert reference["size"] == len(value) and reference["source"] == "orders-3@17"
    assert dead.key == b"k" and dead.headers[0] == ("event-id", b"e-1")


def test_headers_then_the_key_go_when_the_value_alone_is_not_enough() -> None:
    huge_headers = tuple((f"h{i}", b"x" * 1000) for i in range(20))
    dead = dlq_record(failed(key=b"K" * 30_000, headers=huge_headers), "g", "p", 16 * 1024)
    assert record_size(dead.key, dead.value, dead.headers) <= 16 * 1024
    assert header_value(dead.headers, HEADERS_OMITTED) == "20"
    assert header_value(dead.headers, KEY_OMITTED) == "30000"
    assert dead.key is None and dead.partition == 3


@pytest.mark.parametrize("limit", [8 * 1024, 100_000, 1_048_588])
def test_a_record_at_the_source_limit_fits_any_dlq_limit_of_8_kib_or_more(limit: int) -> None:
    value = b"\x00" * 1_047_888
    dead = dlq_record(failed(value=value), "g", "p", limit)
    assert record_size(dead.key, dead.value, dead.headers) <= limit
