from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID, uuid4

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import (
    EventValidationError,
    MissingKeyError,
    UndecodableRecordError,
    WrongEventTypeError,
)
from pipeline.wire.codec import (
    HEADER_EVENT_ID,
    HEADER_EVENT_TYPE,
    HEADER_PRODUCED_AT,
    HEADER_SCHEMA_VERSION,
    HEADER_TRACE_ID,
    decode_value,
    encode_event,
    encode_events,
    header_value,
    new_event_ids,
)
from tests.unit.models import OPTIONAL_KEY_SPEC, SAMPLE_SPEC, Other, Sample

text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=5000)
samples = st.builds(
    Sample,
    entity_id=st.text(alphabet=st.characters(exclude_categories=("Cs",)), min_size=1, max_size=64),
    happened_at=st.datetimes(timezones=st.just(UTC)) | st.datetimes(),
    amount=st.decimals(
        allow_nan=False, allow_infinity=False, places=4, min_value=-(10**12), max_value=10**12
    ),
    reference=st.uuids(),
    note=text,
    count=st.integers(min_value=-(2**63), max_value=2**64 - 1),
    tags=st.lists(text, max_size=5),
)


@given(samples)
@settings(max_examples=300, deadline=None)
def test_round_trip_keeps_every_field(event: Sample) -> None:
    encoded = encode_event(SAMPLE_SPEC, event)
    decoded = decode_value(SAMPLE_SPEC, encoded.value)
    assert decoded == event
    assert encoded.key == event.entity_id.encode()


def test_headers_carry_type_version_id_and_time() -> None:
    event = Sample(
        entity_id="e1", happened_at=datetime.now(UTC), amount=Decimal("1.10"), reference=uuid4()
    )
    encoded = encode_event(
        SAMPLE_SPEC, event, event_id="id-1", trace_id="trace-9", produced_at_ms=123
    )
    assert header_value(encoded.headers, HEADER_EVENT_TYPE) == "Sample"
    assert header_value(encoded.headers, HEADER_SCHEMA_VERSION) == "1"
    assert header_value(encoded.headers, HEADER_EVENT_ID) == "id-1"
    assert header_value(encoded.headers, HEADER_PRODUCED_AT) == "123"
    assert header_value(encoded.headers, HEADER_TRACE_ID) == "trace-9"
    assert encoded.event_id == "id-1"


def test_decimal_survives_as_exact_string() -> None:
    event = Sample(
        entity_id="e", happened_at=datetime.now(UTC), amount=Decimal("0.1"), reference=uuid4()
    )
    fields = msgpack.unpackb(encode_event(SAMPLE_SPEC, event).value)
    assert fields["amount"] == "0.1"


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    payload = msgpack.packb(
        {
            "entity_id": "e",
            "happened_at": "2026-01-01T00:00:00Z",
            "amount": "1",
            "reference": str(uuid4()),
            "added_later": 5,
        }
    )
    assert decode_value(SAMPLE_SPEC, payload).entity_id == "e"


def test_garbage_bytes_name_topic_partition_offset() -> None:
    with pytest.raises(UndecodableRecordError) as caught:
        decode_value(SAMPLE_SPEC, b"\xc1\xc1not msgpack", partition=3, offset=42)
    assert caught.value.topic == "samples"
    assert caught.value.partition == 3
    assert caught.value.offset == 42
    assert str(caught.value).startswith(
        "topic 'samples' partition 3 offset 42: value is not msgpack"
    )


def test_non_map_value_is_undecodable() -> None:
    with pytest.raises(UndecodableRecordError, match="expected a map of fields"):
        decode_value(SAMPLE_SPEC, msgpack.packb([1, 2]), partition=0, offset=1)


def test_validation_error_names_the_field() -> None:
    payload = msgpack.packb(
        {"entity_id": "e", "happened_at": "yesterday", "amount": "1", "reference": str(uuid4())}
    )
    with pytest.raises(EventValidationError) as caught:
        decode_value(SAMPLE_SPEC, payload, partition=1, offset=7)
    assert caught.value.field == "happened_at"
    assert "partition 1 offset 7: field 'happened_at'" in str(caught.value)


def test_wrong_event_type_is_refused() -> None:
    with pytest.raises(WrongEventTypeError, match="carries Sample events, not Other"):
        encode_event(SAMPLE_SPEC, Other(entity_id="x"))


def test_missing_key_is_refused() -> None:
    event = Sample(
        entity_id="e", happened_at=datetime.now(UTC), amount=Decimal(1), reference=uuid4()
    )
    with pytest.raises(MissingKeyError, match="keyed by field 'optional_key'"):
        encode_event(OPTIONAL_KEY_SPEC, event)


def test_batch_encoding_matches_single_encoding() -> None:
    events = [
        Sample(
            entity_id=f"e{i}", happened_at=datetime.now(UTC), amount=Decimal(i), reference=uuid4()
        )
        for i in range(50)
    ]
    batch = encode_events(SAMPLE_SPEC, events, trace_id="t")
    assert [e.value for e in batch] == [encode_event(SAMPLE_SPEC, e).value for e in events]
    assert [e.key for e in batch] == [e.entity_id.encode() for e in events]
    assert len({e.event_id for e in batch}) == 50
    assert all(header_value(e.headers, HEADER_TRACE_ID) == "t" for e in batch)


def test_event_ids_are_version_4_uuids() -> None:
    for event_id in new_event_ids(200):
        parsed = UUID(event_id)
        assert parsed.version == 4
        assert str(parsed) == event_id


def test_batch_with_one_wrong_event_encodes_nothing() -> None:
    good = Sample(
        entity_id="e", happened_at=datetime.now(UTC), amount=Decimal(1), reference=uuid4()
    )
    with pytest.raises(WrongEventTypeError):
        encode_events(SAMPLE_SPEC, [good, Other(entity_id="x")])
