"""What a faust agent sends is what our workers read, and what it reads is what they wrote."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types.tuples import Message
from pydantic import BaseModel

from pipeline.catalogue import TopicSpec
from pipeline.errors import EventDecodeError, SchemaVersionError
from pipeline.interop.faust import decode_message, events, send
from pipeline.wire.codec import header_value
from pipeline.wire.envelope import EnvelopePolicy, read_envelope


class Reading(BaseModel):
    sensor: str
    celsius: float


SPEC = TopicSpec("readings", Reading, "sensor", event_type="Reading", replication_factor=1)


class SentTo:
    """A faust topic's `send` as far as the helper uses it: keyword arguments, recorded."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, **kwargs: Any) -> None:
        self.sent.append(kwargs)


def as_message(sent: dict[str, Any], offset: int = 0) -> Message:
    return Message(SPEC.name, 0, offset, 0.0, 0, sent["headers"], sent["key"], sent["value"], None)


def test_a_sent_event_has_our_key_body_and_headers() -> None:
    topic = SentTo()
    asyncio.run(send(topic, SPEC, Reading(sensor="s-1", celsius=21.5), event_id="e-1"))
    (sent,) = topic.sent
    assert sent["key"] == b"s-1"
    headers = sent["headers"]
    assert header_value(headers, "event-type") == "Reading"
    assert header_value(headers, "schema-version") == "1"
    assert header_value(headers, "event-id") == "e-1"
    assert header_value(headers, "produced-at")
    # A worker's envelope check takes it as written by one of ours.
    envelope = read_envelope(SPEC.name, 0, 0, headers, b"Reading", EnvelopePolicy())
    assert envelope.event_id == "e-1" and envelope.repair is None
    assert decode_message(SPEC, as_message(sent)) == Reading(sensor="s-1", celsius=21.5)


def test_a_record_that_is_not_an_event_is_a_decode_error_naming_where() -> None:
    garbage = {"headers": [], "key": b"s-1", "value": b"\xc1not msgpack"}
    with pytest.raises(EventDecodeError, match="'readings' partition 0 offset 7"):
        decode_message(SPEC, as_message(garbage, offset=7))


def test_a_body_from_a_newer_schema_is_refused_as_our_workers_refuse_it() -> None:
    topic = SentTo()
    newer = TopicSpec("readings", Reading, "sensor", event_type="Reading", schema_version=2)
    asyncio.run(send(topic, newer, Reading(sensor="s-1", celsius=1.0)))
    with pytest.raises(SchemaVersionError, match="schema version 2, newer than version 1"):
        decode_message(SPEC, as_message(topic.sent[0]))


def test_events_yields_typed_events_and_hands_invalid_records_to_on_invalid() -> None:
    topic = SentTo()
    asyncio.run(send(topic, SPEC, Reading(sensor="s-1", celsius=3.0)))
    good = as_message(topic.sent[0], offset=0)
    bad = as_message({"headers": [], "key": b"s-2", "value": b"\x92\x01\x02"}, offset=1)

    class Stream:
        """faust's stream.events() as the helper uses it: events carrying their message."""

        async def events(self) -> Any:
            for message in (good, bad, good):
                yield SimpleNamespace(message=message)

    invalid: list[tuple[EventDecodeError, Message]] = []

    async def collect() -> list[Reading]:
        return [
            reading async for reading in events(Stream(), SPEC, lambda e, m: invalid.append((e, m)))
        ]

    assert asyncio.run(collect()) == [Reading(sensor="s-1", celsius=3.0)] * 2
    assert [message.offset for _, message in invalid] == [1]
    assert "expected a map of fields" in str(invalid[0][0])
