"""Traces across topics: W3C `traceparent` in record headers, spans where work happens.

A request to the gateway, the worker that enriched its event and the worker
that aggregated the result are three processes; one trace joins them because
every record carries the context of the span that produced it and every
consumer continues from it.

Nothing is recorded unless tracing is configured (`PIPELINE_OTLP_ENDPOINT`,
or a test installing its own provider): with OpenTelemetry's default no-op
provider a span costs a few attribute lookups, and the worker skips even
those per record. Without tracing a record's `traceparent` is passed on to
its outputs untouched, so a trace started upstream is not cut by a hop that
does not record.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import ProxyTracerProvider, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from pipeline.wire.codec import HEADER_TRACEPARENT

TRACER_NAME = "pipeline"

log = logging.getLogger("pipeline.tracing")
_propagator = TraceContextTextMapPropagator()
HEADER_TRACEPARENT_BYTES = HEADER_TRACEPARENT.encode()


_installed: trace.TracerProvider | None = None
_NO_GLOBAL = trace.NoOpTracerProvider()


def install(provider: trace.TracerProvider | None) -> None:
    """Record through `provider` in this process (None: back to the global one).

    OpenTelemetry lets the global provider be set once per process; tests
    (and embedders with a provider of their own) install one here instead.
    """
    global _installed
    _installed = provider


_global: trace.TracerProvider | None = None
"""The global provider once a real one is set (it cannot be unset)."""
_next_global_check = 0.0
GLOBAL_CHECK_INTERVAL_S = 1.0
"""How stale the answer "no global provider yet" may be. OpenTelemetry's getter reads the
environment on every call until one is set: 4.5% of the gateway's CPU per single-event
request in a profile at 50 connections, as spans are asked about several times per request."""


def _provider() -> trace.TracerProvider:
    global _global, _next_global_check
    if _installed is not None:
        return _installed
    if _global is not None:
        return _global
    now = time.monotonic()
    if now < _next_global_check:
        return _NO_GLOBAL
    provider = trace.get_tracer_provider()
    if isinstance(provider, ProxyTracerProvider | trace.NoOpTracerProvider):
        _next_global_check = now + GLOBAL_CHECK_INTERVAL_S
        return _NO_GLOBAL
    _global = provider
    return provider


def enabled() -> bool:
    """Whether spans are recorded: a real provider is installed (cheap; called per batch)."""
    return not isinstance(_provider(), ProxyTracerProvider | trace.NoOpTracerProvider)


def tracer() -> trace.Tracer:
    return _provider().get_tracer(TRACER_NAME)


def traceparent_of(span: trace.Span) -> bytes | None:
    """The W3C header value naming `span` as the parent of what it produces."""
    if not span.get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=trace.set_span_in_context(span))
    value = carrier.get(HEADER_TRACEPARENT)
    return value.encode() if value else None


def context_from(traceparent: bytes | str | None) -> otel_context.Context | None:
    """The trace a record or request belongs to; None when it names none (or a malformed one)."""
    if not traceparent:
        return None
    try:
        value = traceparent.decode() if isinstance(traceparent, bytes) else traceparent
    except UnicodeDecodeError:
        return None
    extracted = _propagator.extract({HEADER_TRACEPARENT: value})
    span = trace.get_current_span(extracted)
    return extracted if span.get_span_context().is_valid else None


def _kafka(topic: str, partition: int | None, more: dict[str, int]) -> dict[str, str | int]:
    """The messaging attributes OpenTelemetry's semantic conventions give a Kafka span."""
    attributes: dict[str, str | int] = {
        "messaging.system": "kafka",
        "messaging.destination.name": topic,
    }
    if partition is not None:
        attributes["messaging.destination.partition.id"] = str(partition)
    return attributes | more


@contextmanager
def producing(topic: str, count: int) -> Iterator[bytes | None]:
    """A span around publishing `count` events to `topic`; yields the traceparent they carry."""
    if not enabled():
        yield traceparent_of(trace.get_current_span())
        return
    with tracer().start_as_current_span(
        f"publish {topic}",
        kind=SpanKind.PRODUCER,
        attributes=_kafka(topic, None, {"messaging.batch.message_count": count}),
    ) as span:
        yield traceparent_of(span)


@contextmanager
def serving(
    method: str, path: str, headers: Sequence[tuple[bytes, bytes]]
) -> Iterator[trace.Span | None]:
    """A request's span, continuing the caller's trace when it sent a `traceparent`.

    Named by its path until the caller knows the route (`update_name`): span
    names are meant to be few, paths are many.
    """
    if not enabled():
        yield None
        return
    parent = None
    for name, value in headers:
        if name == HEADER_TRACEPARENT_BYTES:
            parent = context_from(value)
    with tracer().start_as_current_span(
        f"{method} {path}",
        context=parent,
        kind=SpanKind.SERVER,
        attributes={"http.request.method": method, "url.path": path},
    ) as span:
        yield span


@contextmanager
def batch_span(topic: str, partition: int, records: int) -> Iterator[None]:
    """A span per batch a partition worker handles (its records' spans join their own traces)."""
    if not enabled():
        yield
        return
    with tracer().start_as_current_span(
        f"process {topic}",
        kind=SpanKind.CONSUMER,
        attributes=_kafka(topic, partition, {"messaging.batch.message_count": records}),
    ):
        yield


@contextmanager
def handling(
    processor: str, topic: str, partition: int, offset: int, traceparent: bytes | None
) -> Iterator[trace.Span]:
    """A handler call's span, in the trace of the record it handles (an error is recorded on it)."""
    with tracer().start_as_current_span(
        f"handle {processor}",
        context=context_from(traceparent),
        kind=SpanKind.CONSUMER,
        attributes=_kafka(topic, partition, {"messaging.kafka.offset": offset}),
    ) as span:
        yield span


def setup_tracing(service_name: str, otlp_endpoint: str | None) -> None:
    """Export spans over OTLP/HTTP when an endpoint is configured; otherwise record nothing."""
    if not otlp_endpoint:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    endpoint = otlp_endpoint.rstrip("/")
    if not endpoint.endswith("/v1/traces"):
        endpoint += "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    global _global
    _global = trace.get_tracer_provider()  # seen at once, not at the next check
    log.info("tracing: spans of %s go to %s", service_name, endpoint)


def shutdown_tracing() -> None:
    """Send the spans still buffered (a worker's last batches) before the process exits."""
    provider: Any = trace.get_tracer_provider()
    shutdown = getattr(provider, "shutdown", None)
    if callable(shutdown):
        shutdown()
