"""Bad input never stops a partition: every kind of poison, around valid records, two replicas.

The poisons are published with a raw client, as a foreign producer would:
bytes that are not UTF-8 in headers and keys, nulls, tombstones, broken
msgpack, wrong fields, a wrong event type, a key that is not the body's, and
an undecodable value a few bytes under the topic's limit. Each one ends
where the envelope policy (pipeline.wire.envelope) sends it, byte for byte in the
DLQ with its reason and a log line, or as an output; everything around it
flows on, in order, once.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import msgpack
import pytest
from aiokafka import AIOKafkaProducer

from pipeline.kafka.aiokafka.probe import run_sync
from pipeline.kafka.connect import connect
from pipeline.kafka.record_size import BROKER_DEFAULT_MAX_MESSAGE_BYTES, record_size
from pipeline.ops.topics import TopicsOnCluster
from pipeline.wire.codec import TopicEncoder, header_value
from pipeline.wire.dlq_headers import VALUE_OMITTED
from tests.integration.harness import Harness
from tests.integration.processors import Keyed
from tests.integration.test_runtime import assert_per_key_order
from tests.replicas import poll_until
from tests.support import read_all, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]

Headers = list[tuple[str, bytes | None]]
KEYS = ["k0", "k1", "k2", "k3"]
AROUND = 10
"""Valid records of the poison's key before and after it."""


@dataclass
class Poison:
    name: str
    key: bytes | None
    value: bytes | None
    headers: Headers
    expect: str
    """The DLQ's dlq-error-type, or "output" when the policy lets it through."""


def body(key: str, seq: int, **extra: Any) -> dict[str, Any]:
    return {"key": key, "seq": seq, "payload": "p" * 40, **extra}


def poisons(topic_limit: int) -> list[Poison]:
    def valid(key: str, seq: int) -> bytes:
        return msgpack.packb(body(key, seq))

    ok_type = [("event-type", b"Keyed")]

    def fresh() -> Headers:
        return [("event-id", str(uuid.uuid4()).encode())]

    near_limit = topic_limit - 400  # what the broker takes, with key, headers and batch
    return [
        Poison(
            "event-id not UTF-8",
            b"k0",
            valid("k0", -1),
            [("event-id", b"\xff\xfe\x00")],
            "EnvelopeError",
        ),
        Poison(
            "event-id not UTF-8, undecodable body",
            b"k1",
            b"\xc1\xc1",
            [("event-id", b"\xff\xfe\x00")],
            "EnvelopeError",
        ),
        Poison("null event-id", b"k2", valid("k2", -1), [("event-id", None), *ok_type], "output"),
        Poison(
            "null event-id, undecodable body",
            b"k3",
            b"\xc1 not msgpack",
            [("event-id", None)],
            "UndecodableRecordError",
        ),
        Poison("no event-id at all", b"k0", valid("k0", -1), ok_type, "output"),
        Poison(
            "trace-id not UTF-8",
            b"k1",
            valid("k1", -1),
            [*fresh(), ("trace-id", b"\xc3\x28")],
            "output",
        ),
        Poison("null key", None, valid("k2", -1), fresh(), "EnvelopeError"),
        Poison("key not UTF-8", b"\xff\xfek", valid("k3", -1), fresh(), "EnvelopeError"),
        Poison("tombstone", b"k0", None, fresh(), "UndecodableRecordError"),
        Poison("truncated msgpack", b"k1", valid("k1", -1)[:-4], fresh(), "UndecodableRecordError"),
        Poison(
            "random bytes", b"k2", bytes(range(200, 256)) * 3, fresh(), "UndecodableRecordError"
        ),
        Poison(
            "wrong field types",
            b"k3",
            msgpack.packb({**body("k3", -1), "seq": "not a number"}),
            fresh(),
            "EventValidationError",
        ),
        Poison(
            "missing required field",
            b"k0",
            msgpack.packb({"key": "k0", "payload": "no seq"}),
            fresh(),
            "EventValidationError",
        ),
        Poison(
            "unknown event-type",
            b"k1",
            valid("k1", -1),
            [*fresh(), ("event-type", b"order.teleported.v9")],
            "EnvelopeError",
        ),
        Poison("key differs from the body", b"k2", valid("k3", -1), fresh(), "EnvelopeError"),
        Poison(
            "value near the limit", b"k3", b"\xc1" * near_limit, fresh(), "UndecodableRecordError"
        ),
    ]


@dataclass
class Sent:
    poison: Poison
    partition: int
    offset: int


async def publish_stream(
    harness: Harness, poison_list: list[Poison]
) -> tuple[list[str], list[Sent]]:
    """Per poison: AROUND valid records of its key, the poison, AROUND more; all on one producer."""
    encoder = TopicEncoder(harness.source)
    producer = AIOKafkaProducer(
        bootstrap_servers=harness.settings.bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        max_request_size=4 * 1024 * 1024,
    )
    await producer.start()
    valid_ids: list[str] = []
    sent: list[Sent] = []
    seq = dict.fromkeys(KEYS, 0)
    try:
        for index, poison in enumerate(poison_list):
            key = KEYS[index % len(KEYS)]
            for half in (0, 1):
                futures = []
                for _ in range(AROUND):
                    event_id = str(uuid.uuid4())
                    encoded = encoder.encode(Keyed(key=key, seq=seq[key]), event_id)
                    seq[key] += 1
                    valid_ids.append(event_id)
                    futures.append(
                        await producer.send(
                            harness.source.name,
                            encoded.value,
                            key=encoded.key,
                            headers=encoded.headers,
                        )
                    )
                for future in futures:
                    await future
                if half == 0:
                    metadata = await producer.send_and_wait(
                        harness.source.name, poison.value, key=poison.key, headers=poison.headers
                    )
                    sent.append(Sent(poison, metadata.partition, metadata.offset))
    finally:
        await producer.stop()
    return valid_ids, sent


def dead_letter_lines(harness: Harness) -> set[str]:
    pattern = re.compile(r"dead-lettered (\S+-\d+@\d+) \(processor passthrough")
    found: set[str] = set()
    for replica in harness.replicas:
        found.update(pattern.findall(replica.tail(100_000)))
    return found


def test_every_poison_ends_where_the_policy_sends_it_and_nothing_else_stops(
    harness: Harness,
) -> None:
    replicas = [harness.start("passthrough", f"r{i}") for i in range(2)]
    for replica in replicas:
        replica.wait_ready()
    poison_list = poisons(BROKER_DEFAULT_MAX_MESSAGE_BYTES)
    valid_ids, sent = run_sync(publish_stream(harness, poison_list))
    expected_dead = [s for s in sent if s.poison.expect != "output"]
    expected_outputs = len(valid_ids) + len(sent) - len(expected_dead)

    harness.wait_outputs(expected_outputs + len(expected_dead), timeout_s=120)
    poll_until(lambda: lag(harness) == 0, 60, what="the group's lag at 0")

    outputs = harness.outputs()
    assert len(outputs) == expected_outputs
    seen = Counter(event.source_id for _, _, event in outputs)
    assert set(valid_ids) <= set(seen), f"{len(set(valid_ids) - set(seen))} valid events lost"
    assert max(seen.values()) == 1, "an event was output twice"
    assert_per_key_order([o for o in outputs if o[2].seq >= 0])
    let_through = {s.poison.name: s for s in sent if s.poison.expect == "output"}
    by_source = {event.source_id: event for _, _, event in outputs}
    derived = [f"{harness.source.name}/{s.partition}/{s.offset}" for s in let_through.values()]
    # A missing or null event-id gets one from where the record is stored.
    assert sum(1 for d in derived if d in by_source) == 2

    dead = run_sync(read_all(connect(harness.settings), harness.dlq))
    assert len(dead) == len(expected_dead)
    by_source_offset = {
        (
            int(header_value(r.headers, "dlq-source-partition") or -1),
            int(header_value(r.headers, "dlq-source-offset") or -1),
        ): r
        for r in dead
    }
    for item in expected_dead:
        record = by_source_offset[(item.partition, item.offset)]
        name = item.poison.name
        assert header_value(record.headers, "dlq-error-type") == item.poison.expect, name
        assert record.key == item.poison.key, f"{name}: key changed in the DLQ"
        assert record.value == item.poison.value, f"{name}: value changed in the DLQ"
        assert list(record.headers[: len(item.poison.headers)]) == item.poison.headers, name
        assert header_value(record.headers, VALUE_OMITTED) is None, name
        assert header_value(record.headers, "dlq-error-message"), name

    logged = dead_letter_lines(harness)
    for item in expected_dead:
        assert f"{harness.source.name}-{item.partition}@{item.offset}" in logged, item.poison.name
    for replica in replicas:
        assert replica.stop() == 0, replica.tail()


def lag(harness: Harness) -> int:
    result = run_cli(
        "lag", "--processor", "passthrough", "--json", "--interval", "0.1", env=harness.env
    )
    assert result.returncode == 0, result.stderr
    return int(json.loads(result.stdout.splitlines()[-1])["lag"])


def test_a_dead_letter_over_the_dlq_topics_limit_keeps_a_reference_instead(
    harness: Harness,
) -> None:
    """An operator lowered the DLQ's limit: the worker reads it and shrinks the copy to fit."""

    async def lower_dlq_limit() -> None:
        async with TopicsOnCluster(connect(harness.settings)) as topics:
            result = await topics.admin.set_topic_configs(
                {harness.dlq: {"max.message.bytes": "65536"}}
            )
        assert result == {harness.dlq: None}

    run_sync(lower_dlq_limit())
    replica = harness.start("passthrough", "r0")
    replica.wait_ready()
    big = Poison(
        "big", b"k0", b"\xc1" * 300_000, [("event-id", b"big-1")], "UndecodableRecordError"
    )
    _, sent = run_sync(publish_stream(harness, [big]))
    harness.wait_outputs(2 * AROUND + 1, timeout_s=60)
    dead = run_sync(read_all(connect(harness.settings), harness.dlq))
    assert len(dead) == 1
    record = dead[0]
    assert record_size(record.key, record.value, record.headers) <= 65536
    assert header_value(record.headers, VALUE_OMITTED) == "300000"
    assert record.value is not None and json.loads(record.value)["size"] == 300_000
    assert record.key == b"k0" and record.headers[0] == ("event-id", b"big-1")
    assert header_value(record.headers, "dlq-source-offset") == str(sent[0].offset)
    assert "with its value left out" in replica.tail(200)
    refused = run_cli("dlq", "redrive", "--topic", harness.dlq, env=harness.env)
    assert refused.returncode == 2
    assert "dlq-value-omitted" in refused.stderr
    assert replica.stop() == 0


def test_redrive_puts_nulls_back_as_nulls(harness: Harness) -> None:
    replica = harness.start("passthrough", "r0")
    replica.wait_ready()
    tombstone = Poison("tombstone", b"k0", None, [("event-id", b"t-1")], "UndecodableRecordError")
    keyless = Poison(
        "null key", None, msgpack.packb(body("k1", 0)), [("event-id", b"n-1")], "EnvelopeError"
    )
    _, sent = run_sync(publish_stream(harness, [tombstone, keyless]))
    harness.wait_outputs(4 * AROUND + 2, timeout_s=60)
    assert replica.stop() == 0
    redriven = run_cli("dlq", "redrive", "--topic", harness.dlq, env=harness.env)
    assert redriven.returncode == 0, redriven.stderr
    assert "redrove 2 record(s)" in redriven.stderr
    back = [
        r
        for r in run_sync(read_all(connect(harness.settings), harness.source.name))
        if header_value(r.headers, "redrive-count") == "1"
    ]
    by_id = {header_value(r.headers, "event-id"): r for r in back}
    assert set(by_id) == {"t-1", "n-1"}
    assert by_id["t-1"].key == b"k0" and by_id["t-1"].value is None  # still a tombstone
    assert by_id["n-1"].key is None  # still keyless, on the partition it came from
    assert by_id["n-1"].partition == sent[1].partition
    assert by_id["n-1"].value == keyless.value
