"""The per-record fault boundary, driven with arbitrary records: nothing a record holds escapes.

The partition worker's own handling code runs here (BatchHandler.handle
with its lanes, retries and dead-lettering), with a stand-in for the host
process around it and no broker: whatever bytes or nulls a record's key, value and
headers hold, it ends as an output or as one DLQ record that fits the DLQ
topic's limit, and which of the two follows the documented policy.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from typing import Any

import msgpack
from aiokafka.structs import ConsumerRecord
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from pipeline.catalogue import TopicSpec
from pipeline.kafka.port import TopicPartition
from pipeline.kafka.record_size import record_size
from pipeline.metrics import Metrics
from pipeline.processor import Context, PermanentError, Processor
from pipeline.resilience.breaker import BreakerRegistry
from pipeline.resilience.log_limit import RateLimitedLog
from pipeline.resilience.retry import RetryPolicy
from pipeline.runtime.batch_handler import BatchHandler
from pipeline.runtime.host import HandlingParts
from pipeline.runtime.record_path import RecordPath
from pipeline.stores.services import Services
from pipeline.wire.codec import header_value
from pipeline.wire.dlq_headers import KEY_OMITTED, VALUE_OMITTED
from pipeline.wire.envelope import EnvelopePolicy
from tests.unit.models import Sample

SOURCE = TopicSpec(name="in", event_model=Sample, key_field="entity_id", partitions=4)


class Out(BaseModel):
    entity_id: str
    payload: str


OUTPUT = TopicSpec(name="out", event_model=Out, key_field="entity_id", partitions=4)
OUTPUT_LIMIT = 6 * 1024
MODES = ["", "bug", "big", "permanent", "emit-nothing"]


async def handler(event: Sample, ctx: Context) -> Out | None:
    if event.note == "bug":
        raise RuntimeError("a handler bug")
    if event.note == "permanent":
        raise PermanentError("never")
    if event.note == "emit-nothing":
        return None
    payload = "x" * (OUTPUT_LIMIT * 2) if event.note == "big" else event.note
    return Out(entity_id=event.entity_id, payload=payload)


PROCESSOR = Processor(
    "boundary",
    SOURCE,
    handler,
    outputs=(OUTPUT,),
    lanes=3,
    retry=RetryPolicy(attempts=2, base_delay_s=0.0005, max_delay_s=0.001),
)


def valid_body(entity_id: str, note: str) -> dict[str, Any]:
    return {
        "entity_id": entity_id,
        "happened_at": "2026-11-28T10:00:00Z",
        "amount": "12.50",
        "reference": "6f1c2a4e-1d2b-4c3a-9e8f-0a1b2c3d4e5f",
        "note": note,
    }


header_names = st.sampled_from(["event-id", "trace-id", "event-type", "schema-version", "x-other"])
header_values = st.one_of(
    st.none(),
    st.binary(max_size=24),
    st.just(b"Sample"),
    st.just(b"\xff\xfe\x00"),
    st.text(max_size=12).map(str.encode),
)


@st.composite
def records(draw: st.DrawFn, offset: int, dlq_limit: int) -> ConsumerRecord[bytes, bytes]:
    entity_id = draw(st.text(min_size=1, max_size=8))
    note = draw(st.one_of(st.sampled_from(MODES), st.text(max_size=10)))
    body = valid_body(entity_id, note)
    valid = msgpack.packb(body)
    value = draw(
        st.one_of(
            st.just(valid),
            st.just(valid),
            st.just(valid),
            st.none(),
            st.binary(max_size=64),
            st.just(msgpack.packb(body)[:-3]),  # truncated msgpack
            st.just(msgpack.packb({**body, "amount": [1, 2]})),  # a wrong field type
            st.just(msgpack.packb({k: v for k, v in body.items() if k != "reference"})),
            st.just(msgpack.packb([1, 2, 3])),  # msgpack, not a map
            st.integers(dlq_limit - 2000, dlq_limit + 2000).map(lambda n: b"\xc1" * n),
        )
    )
    key = draw(
        st.one_of(
            st.just(entity_id.encode()),
            st.just(entity_id.encode()),
            st.just(entity_id.encode()),
            st.none(),
            st.binary(max_size=12),
            st.just(b"\xff\xfe"),
        )
    )
    headers = draw(st.lists(st.tuples(header_names, header_values), max_size=5))
    return ConsumerRecord(
        topic=SOURCE.name,
        partition=2,
        offset=offset,
        timestamp=1_700_000_000_000,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=-1 if key is None else len(key),
        serialized_value_size=-1 if value is None else len(value),
        headers=headers,
    )


def expected_dead(record: ConsumerRecord[bytes, bytes]) -> bool:
    """The documented policy, written out again independently of the code under test."""
    event_type = [v for name, v in record.headers if name == "event-type"]
    if event_type and event_type[-1] and event_type[-1] != b"Sample":
        return True
    event_id = [v for name, v in record.headers if name == "event-id"]
    if event_id and event_id[-1]:
        try:
            event_id[-1].decode()
        except UnicodeDecodeError:
            return True
    version = [v for name, v in record.headers if name == "schema-version"]
    if version and version[-1] is not None and version[-1] != b"1":
        try:
            number = int(version[-1].decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            return True  # not a version
        if number != 1:
            return True  # not positive, or newer than a backward-compatible consumer reads
    try:
        fields = msgpack.unpackb(record.value, raw=False, strict_map_key=False)  # type: ignore[arg-type]
        event = Sample.model_validate(fields)
    except (ValidationError, ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError):
        return True
    except Exception:  # noqa: BLE001 - any other unpacking failure is undecodable too
        return True
    if record.key != event.entity_id.encode():
        return True
    return event.note in ("bug", "big", "permanent")


def handling_parts(dlq_limit: int) -> HandlingParts:
    path = RecordPath(
        PROCESSOR, "group", EnvelopePolicy(), {"in.dlq": dlq_limit, "out": OUTPUT_LIMIT}
    )
    quiet = logging.getLogger("test.boundary")

    def no_pool(kind: str) -> Executor:
        raise AssertionError(f"the handler runs in the loop, it asked for a {kind} pool")

    def no_failure(reason: str) -> None:
        raise AssertionError(f"the worker was stopped: {reason}")

    return HandlingParts(
        processor=PROCESSOR,
        replica_id="r1",
        metrics=Metrics(),
        breakers=BreakerRegistry({}),
        services=Services(PROCESSOR.name),
        record_path=path,
        dead_letter_log=RateLimitedLog(quiet, "dead-lettered records"),
        retry_log=RateLimitedLog(quiet, "retry lines"),
        executor_for=no_pool,
        fail=no_failure,
    )


async def handle(batch: list[ConsumerRecord[bytes, bytes]], dlq_limit: int) -> Any:
    handler = BatchHandler(TopicPartition("in", 2), handling_parts(dlq_limit), asyncio.Event())
    return await handler.handle(batch)  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.sampled_from([8 * 1024, 64 * 1024, 1_048_588]))
def test_every_record_ends_as_an_output_or_a_dead_letter_that_fits(
    data: st.DataObject, dlq_limit: int
) -> None:
    count = data.draw(st.integers(1, 12))
    batch = [data.draw(records(100 + i, dlq_limit)) for i in range(count)]
    result = asyncio.run(handle(batch, dlq_limit))

    dead_offsets = [
        int(header_value(d.headers, "dlq-source-offset") or -1) for d in result.dead_letters
    ]
    assert result.processed + len(dead_offsets) == count
    assert sorted(dead_offsets) == [r.offset for r in batch if expected_dead(r)]

    by_offset = {r.offset: r for r in batch}
    for dead in result.dead_letters:
        assert record_size(dead.key, dead.value, dead.headers) <= dlq_limit
        original = by_offset[int(header_value(dead.headers, "dlq-source-offset") or -1)]
        if header_value(dead.headers, VALUE_OMITTED) is None:
            assert dead.value == original.value  # byte for byte; None stays None
        if header_value(dead.headers, KEY_OMITTED) is None:
            assert dead.key == original.key
        assert header_value(dead.headers, "dlq-error-type")
    outputs = result.outputs.get("out", (None, []))[1]
    for encoded in outputs:
        assert record_size(encoded.key, encoded.value, encoded.headers) <= OUTPUT_LIMIT
    handled = [r for r in batch if not expected_dead(r)]
    event("records handled: " + ("some" if handled else "none"))
    event("records dead-lettered: " + ("some" if dead_offsets else "none"))
    emitted = [r for r in handled if msgpack.unpackb(r.value)["note"] != "emit-nothing"]  # type: ignore[arg-type]
    assert len(outputs) == len(emitted)
