"""Trace context through the runtime, on the in-memory broker and an in-memory span exporter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pipeline.kafka.memory import MemoryClients
from pipeline.kafka.partitioner import kafka_partition
from pipeline.processor import Context, Processor
from pipeline.publishing.producer import EventProducer
from pipeline.telemetry import tracing
from pipeline.testing import TestPipeline
from pipeline.wire.codec import HEADER_TRACEPARENT, encode_event
from tests.unit.runtime.support import OUTPUT, SOURCE, Done, Step, new_broker, settings

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.install(None)


async def echo(step: Step, ctx: Context) -> Done:
    if step.mode == "fail-once" and ctx.attempt == 1:
        raise RuntimeError("first attempt fails")
    return Done(key=step.key, n=step.n)


def output_traceparents(pipeline: TestPipeline) -> list[bytes | None]:
    return [dict(record.headers).get(HEADER_TRACEPARENT) for record in pipeline.records(OUTPUT)]


async def publish_with(pipeline: TestPipeline, step: Step, traceparent: bytes | None) -> None:
    """As an upstream producer with its own tracing would: the header set by hand."""
    encoded = encode_event(SOURCE, step, traceparent=traceparent)
    assert encoded.key is not None
    partition = kafka_partition(encoded.key, SOURCE.partitions)
    await pipeline.publish_raw(SOURCE, encoded.value, encoded.key, encoded.headers, partition)


async def test_without_tracing_an_inputs_traceparent_passes_to_its_outputs() -> None:
    assert not tracing.enabled()
    upstream = f"00-{TRACE}-{PARENT}-01".encode()
    processor = Processor("echo", SOURCE, echo, outputs=(OUTPUT,))
    async with TestPipeline(processor) as pipeline:
        await publish_with(pipeline, Step(key="k", n=1), upstream)
        await publish_with(pipeline, Step(key="k", n=2), None)
        await pipeline.processed()
        assert output_traceparents(pipeline) == [upstream, None]


async def test_each_handler_call_is_a_span_in_its_records_trace(
    exported: InMemorySpanExporter,
) -> None:
    upstream = f"00-{TRACE}-{PARENT}-01".encode()
    processor = Processor("echo", SOURCE, echo, outputs=(OUTPUT,))
    async with TestPipeline(processor) as pipeline:
        await publish_with(pipeline, Step(key="k", n=1, mode="fail-once"), upstream)
        await pipeline.processed()
        (carried,) = output_traceparents(pipeline)
    handled = [s for s in exported.get_finished_spans() if s.name == "handle echo"]
    failed, succeeded = handled
    for span in handled:
        assert f"{span.context.trace_id:032x}" == TRACE
        assert span.parent is not None and f"{span.parent.span_id:016x}" == PARENT
    assert not failed.status.is_ok and failed.events[0].name == "exception"
    # The output names the span that produced it, in the same trace.
    assert carried is not None and carried.startswith(
        f"00-{TRACE}-{succeeded.context.span_id:016x}-".encode()
    )
    assert any(s.name == f"process {SOURCE.name}" for s in exported.get_finished_spans())


async def test_a_producer_starts_a_trace_and_every_event_of_the_call_carries_it(
    exported: InMemorySpanExporter,
) -> None:
    broker = new_broker()
    async with EventProducer(settings(), clients=MemoryClients(broker)) as producer:
        await producer.publish_many(SOURCE, [Step(key=f"k{n}", n=n) for n in range(5)])
    (span,) = [s for s in exported.get_finished_spans() if s.name == f"publish {SOURCE.name}"]
    context = span.context
    flags = int(context.trace_flags)
    expected = f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags:02x}".encode()
    headers = [
        dict(entry.record.headers)[HEADER_TRACEPARENT]
        for log in broker.topic(SOURCE.name).partitions
        for entry in log.entries
        if entry.record is not None
    ]
    assert headers == [expected] * 5


@pytest.mark.parametrize(
    "value",
    [b"", b"00-zz-yy-01", b"\xff\xfe", f"00-{'0' * 32}-{PARENT}-01".encode(), b"garbage"],
)
async def test_a_malformed_traceparent_starts_a_new_trace_and_is_not_an_error(
    exported: InMemorySpanExporter, value: bytes
) -> None:
    processor = Processor("echo", SOURCE, echo, outputs=(OUTPUT,))
    async with TestPipeline(processor) as pipeline:
        await publish_with(pipeline, Step(key="k", n=1), value)
        await pipeline.processed()
        assert pipeline.metrics.total("dead_lettered") == 0
    (span,) = [s for s in exported.get_finished_spans() if s.name == "handle echo"]
    assert span.parent is None or f"{span.context.trace_id:032x}" != TRACE


def test_a_global_provider_set_after_start_is_seen_within_the_check_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ "No provider yet" is remembered for a second (OpenTelemetry's getter reads the
    environment per call); one set later, by an embedder, is seen once that second is over,
    and is kept."""
    from opentelemetry import trace

    monkeypatch.setattr(tracing, "_global", None)
    monkeypatch.setattr(tracing, "_next_global_check", 0.0)
    assert not tracing.enabled()
    real = TracerProvider()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: real)
    assert not tracing.enabled()  # within the second: still the remembered answer
    monkeypatch.setattr(tracing, "_next_global_check", 0.0)  # the second is over
    assert tracing.enabled()
    monkeypatch.setattr(trace, "get_tracer_provider", trace.NoOpTracerProvider)
    assert tracing.enabled()  # a global provider cannot be unset: kept without asking
