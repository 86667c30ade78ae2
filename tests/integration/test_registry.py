"""Avro through a real schema registry, against software nobody here wrote.

The registry is Apicurio, built and started by the project's own files
(pipeline.dev.registry). confluent-kafka's own Producer and AvroSerializer
write records a worker process reads; the worker's outputs are read back
by confluent-kafka's AvroDeserializer. Records in the wrong framing or with
an id the registry does not have go to the DLQ with that reason.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from google.protobuf import json_format
from pydantic import BaseModel

from pipeline.catalogue import TopicSpec
from pipeline.kafka.aiokafka.probe import run_sync
from pipeline.kafka.connect import connect
from pipeline.ops.topics import ensure_topics
from pipeline.publishing.producer import EventProducer
from pipeline.settings import PipelineSettings
from pipeline.wire.avro_schema import avro_schema
from pipeline.wire.codec import decode_value, header_value
from pipeline.wire.registry import SchemaRegistry, schema_text, use_registry
from tests.integration.harness import run_until_settled
from tests.integration.processors import AVRO_OUTPUT, AVRO_SOURCE, Keyed
from tests.support import read_all, run_cli
from tests.unit.proto_messages import KeyedProto

EVENTS = 200
KEYS = 5


def test_confluents_avro_serializer_in_and_deserializer_out_through_a_worker(
    settings: PipelineSettings, unique: str, schema_registry: str, tmp_path: Path
) -> None:
    source = AVRO_SOURCE.with_name(unique + AVRO_SOURCE.name)
    output = AVRO_OUTPUT.with_name(unique + AVRO_OUTPUT.name)
    clients = connect(settings)
    run_sync(ensure_topics(clients, [source, source.dlq_spec(), output]))

    # Another team's producer: confluent-kafka with its own serializer, a schema written by hand.
    registry = SchemaRegistryClient({"url": schema_registry})
    their_schema = {
        "type": "record",
        "name": "Keyed",
        "namespace": "com.example.upstream",
        "fields": [
            {"name": "key", "type": "string"},
            {"name": "seq", "type": "long"},
            {"name": "origin", "type": "string", "default": "upstream"},
        ],
    }
    serialize = AvroSerializer(registry, json.dumps(their_schema))
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    for seq in range(EVENTS):
        key = f"k{seq % KEYS}"
        value = serialize(
            {"key": key, "seq": seq, "origin": "upstream"},
            SerializationContext(source.name, MessageField.VALUE),
        )
        producer.produce(source.name, key=key.encode(), value=value)
    mismatched = serialize(
        {"key": "k3", "seq": 999, "origin": "upstream"},
        SerializationContext(source.name, MessageField.VALUE),
    )
    producer.produce(source.name, key=b"not-k3", value=mismatched)  # keyed by something else
    producer.produce(source.name, key=b"k1", value=b"\x01not framed")
    producer.produce(source.name, key=b"k2", value=b"\x00\x00\x0f\x42\x40\x02")  # id 1000000
    assert producer.flush(30) == 0

    run_until_settled(
        settings,
        "avro_passthrough",
        (output.name, source.dlq_name),
        (EVENTS, 3),
        tmp_path,
        unique,
        PIPELINE_SCHEMA_REGISTRY__URL=schema_registry,
    )

    # Our outputs, read by confluent-kafka's deserializer with the registry's schema.
    deserialize = AvroDeserializer(registry)
    seqs_by_key: dict[str, list[int]] = defaultdict(list)
    for record in run_sync(read_all(clients, output.name)):
        body = deserialize(record.value, SerializationContext(output.name, MessageField.VALUE))
        assert record.key == body["key"].encode()
        seqs_by_key[body["key"]].append(body["seq"])
    assert sorted(s for seqs in seqs_by_key.values() for s in seqs) == list(range(EVENTS))
    for key, seqs in seqs_by_key.items():
        assert seqs == sorted(seqs), f"{key}'s events out of order"
    latest = registry.get_latest_version(f"{output.name}-value")
    assert json.loads(latest.schema.schema_str) == avro_schema(AVRO_OUTPUT.event_model, "Handled")

    dead = {
        r.value: header_value(r.headers, "dlq-error-message") or ""
        for r in run_sync(read_all(clients, source.dlq_name))
    }
    assert "not in the registry's wire format" in dead[b"\x01not framed"]
    assert "schema id 1000000 is not in the registry" in dead[b"\x00\x00\x0f\x42\x40\x02"]
    assert "is not the body's 'key'" in dead[mismatched]

    # `pipeline dlq inspect` shows a framed value decoded through the registry.
    inspected = run_cli(
        *("dlq", "inspect", "--topic", source.dlq_name, "--json", "--limit", "5"),
        env={
            "PIPELINE_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "PIPELINE_SCHEMA_REGISTRY__URL": schema_registry,
        },
    )
    assert inspected.returncode == 0, inspected.stderr
    values = [sample["value"] for sample in json.loads(inspected.stdout)["samples"]]
    assert {"key": "k3", "seq": 999, "origin": "upstream"} in [
        v["fields"] for v in values if isinstance(v, dict) and "schema_id" in v
    ], values


def confluent_serde(
    fmt: str, topic: TopicSpec[BaseModel], client: SchemaRegistryClient
) -> tuple[
    Callable[[Any, SerializationContext], bytes], Callable[[bytes, SerializationContext], Any]
]:
    """confluent-kafka's own serializer and deserializer of a format, on the real registry."""
    if fmt == "json_schema":
        return (
            JSONSerializer(schema_text(topic), client),
            JSONDeserializer(None, schema_registry_client=client),
        )
    conf = {"use.deprecated.format": False}
    serializer = ProtobufSerializer(KeyedProto, client, conf)
    return (
        lambda fields, ctx: serializer(KeyedProto(**fields), ctx),
        lambda value, ctx: json_format.MessageToDict(
            ProtobufDeserializer(KeyedProto, conf)(value, ctx), preserving_proto_field_name=True
        ),
    )


@pytest.mark.parametrize("fmt", ["json_schema", "protobuf"])
async def test_registry_formats_interoperate_with_confluents_serde_on_a_real_registry(
    settings: PipelineSettings, unique: str, schema_registry: str, fmt: str
) -> None:
    topic = TopicSpec(
        f"{unique}keyed.{fmt}",
        Keyed,
        key_field="key",
        partitions=1,
        replication_factor=1,
        format=fmt,  # type: ignore[arg-type]
        protobuf_message=KeyedProto if fmt == "protobuf" else None,
    )
    await ensure_topics(connect(settings), [topic])
    registry = SchemaRegistryClient({"url": schema_registry})
    serialize, deserialize = confluent_serde(fmt, topic, registry)
    context = SerializationContext(topic.name, MessageField.VALUE)
    previous = use_registry(SchemaRegistry(registry, schema_registry))
    try:
        async with EventProducer(settings) as producer:
            await producer.publish(topic, Keyed(key="a", seq=1))
        their_producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
        their_producer.produce(
            topic.name,
            key=b"b",
            value=serialize({"key": "b", "seq": 2, "mode": "", "payload": ""}, context),
        )
        assert their_producer.flush(30) == 0
        ours, theirs = await read_all(connect(settings), topic.name)
        ours_read = deserialize(ours.value, context)
        assert ours_read["key"] == "a" and int(ours_read["seq"]) == 1
        assert decode_value(topic, theirs.value) == Keyed(key="b", seq=2)
    finally:
        use_registry(previous)
