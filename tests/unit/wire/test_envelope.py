"""The envelope policy: what each key and header fault becomes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import pytest

from pipeline.errors import EnvelopeError
from pipeline.wire.envelope import EnvelopePolicy, check_key, read_envelope, shown
from tests.unit.models import Sample

TYPE = b"Sample"
STRICT = EnvelopePolicy()


def envelope(headers: list[tuple[str, bytes | None]], policy: EnvelopePolicy = STRICT):  # type: ignore[no-untyped-def]
    return read_envelope("orders", 3, 17, headers, TYPE, policy)


def sample(entity_id: str = "c-1") -> Sample:
    return Sample(
        entity_id=entity_id,
        happened_at=datetime.now(UTC),
        amount=Decimal("1.5"),
        reference=uuid4(),
    )


def test_a_clean_envelope_gives_its_ids_and_no_repair() -> None:
    got = envelope([("event-type", TYPE), ("event-id", b"id-1"), ("trace-id", b"tr-1")])
    assert got == ("id-1", "tr-1", None, None, None)


def test_a_traceparent_is_kept_raw_whatever_its_bytes() -> None:
    """Checked only when a span starts from it (a malformed one starts a new trace)."""
    for raw in (b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", b"\xff", None):
        got = envelope([("event-id", b"e"), ("traceparent", raw)])
        assert got.traceparent == raw and got.repair is None


@pytest.mark.parametrize("raw", [None, b""])
def test_a_missing_or_null_event_id_is_derived_from_where_the_record_is(
    raw: bytes | None,
) -> None:
    headers = [] if raw is None else [("event-id", raw)]
    assert envelope(headers) == ("orders/3/17", None, "event-id derived", None, None)
    assert envelope([("event-id", None)]) == ("orders/3/17", None, "event-id derived", None, None)
    with pytest.raises(EnvelopeError, match="no event-id header"):
        envelope(headers, EnvelopePolicy(missing_event_id="dlq"))


def test_an_event_id_that_is_not_utf8_is_dead_lettered_unless_relaxed() -> None:
    headers: list[tuple[str, bytes | None]] = [("event-id", b"\xff\xfe\x00")]
    with pytest.raises(EnvelopeError) as caught:
        envelope(headers)
    message = str(caught.value)
    assert "topic 'orders' partition 3 offset 17" in message
    assert "header event-id" in message and r"b'\xff\xfe\x00'" in message
    assert "MALFORMED_EVENT_ID=derive" in message
    relaxed = envelope(headers, EnvelopePolicy(malformed_event_id="derive"))
    assert relaxed == ("orders/3/17", None, "event-id derived", None, None)


def test_a_trace_id_that_is_not_utf8_is_dropped_or_dead_lettered() -> None:
    headers: list[tuple[str, bytes | None]] = [("event-id", b"e"), ("trace-id", b"\xc3\x28")]
    assert envelope(headers) == ("e", None, "trace-id dropped", None, None)
    with pytest.raises(EnvelopeError, match="trace-id"):
        envelope(headers, EnvelopePolicy(malformed_trace_id="dlq"))


def test_another_event_type_is_dead_lettered_a_missing_one_is_not() -> None:
    with pytest.raises(EnvelopeError, match=r"'order.teleported.v9' is not this topic's type"):
        envelope([("event-type", b"order.teleported.v9"), ("event-id", b"e")])
    with pytest.raises(EnvelopeError):
        envelope([("event-type", b"\xff")])
    assert envelope([("event-id", b"e")]).repair is None
    assert envelope([("event-type", None), ("event-id", b"e")]).repair is None
    accepted = envelope([("event-type", b"Other")], EnvelopePolicy(wrong_event_type="accept"))
    assert accepted.event_id == "orders/3/17"


def test_the_last_of_repeated_headers_wins() -> None:
    assert envelope([("event-id", b"first"), ("event-id", b"second")]).event_id == "second"


@pytest.mark.parametrize("key", [None, b"", b"\xff\xfe", b"c-2", b"c-1 "])
def test_a_key_that_is_not_the_bodys_key_field_is_dead_lettered(key: bytes | None) -> None:
    with pytest.raises(EnvelopeError) as caught:
        check_key("orders", 3, 17, key, sample("c-1"), "entity_id", STRICT)
    assert "field 'key'" in str(caught.value)
    assert "'c-1'" in str(caught.value)
    check_key(
        "orders", 3, 17, key, sample("c-1"), "entity_id", EnvelopePolicy(key_mismatch="accept")
    )


def test_the_matching_key_passes() -> None:
    check_key("orders", 3, 17, b"c-1", sample("c-1"), "entity_id", STRICT)


def test_bytes_are_shown_as_text_when_they_can_be_and_shortened() -> None:
    assert shown(None) == "null"
    assert shown(b"abc") == "'abc'"
    assert shown(b"\xff") == r"b'\xff'"
    assert len(shown(b"x" * 500)) == 80
