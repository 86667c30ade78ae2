"""One trace across three processes: a gateway request, enrich_orders, then order_stats.

Real processes export their spans over OTLP/HTTP to a receiver in the test;
the trace is followed through the `traceparent` header each record carries.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pipeline.kafka.aiokafka.probe import run_sync
from pipeline.kafka.connect import connect
from pipeline.ops.topics import ensure_topics
from pipeline.settings import PipelineSettings
from tests.integration.test_example_pipeline import Pipeline
from tests.integration.test_gateway import SHOP_KEY, order, start_gateway, wait_status
from tests.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.replicas import poll_until
from topics import CATALOGUE

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SPAN_KIND_SERVER = 2
SPAN_KIND_PRODUCER = 4


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    try:
        yield receiver
    finally:
        receiver.close()


def test_a_gateway_request_is_one_trace_through_both_workers(
    settings: PipelineSettings,
    unique: str,
    postgres_url: str,
    tmp_path: Path,
    receiver: OtlpReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tracing_env = {"PIPELINE_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200"}
    for name, value in tracing_env.items():
        monkeypatch.setenv(name, value)
    run_sync(ensure_topics(connect(settings), CATALOGUE.with_prefix(unique).with_dlqs()))
    pipeline = Pipeline(settings, unique, postgres_url, tmp_path)
    customer = pipeline.customer(1)
    pipeline.publish("customers", [customer])
    enrich = pipeline.start("e1", "enrich_orders", **tracing_env)
    stats = pipeline.start("s1", "order_stats", **tracing_env)
    url, gateway = start_gateway(settings.bootstrap_servers, unique, str(tmp_path / "gw.log"))
    try:
        wait_status(url, "/readyz", 200)
        enrich.wait_ready()
        stats.wait_ready()
        trace_id = uuid.uuid4().hex
        caller_span = uuid.uuid4().hex[:16]
        answer = httpx.post(
            url + "/v1/topics/orders/events",
            json=order(customer_id=customer.customer_id),
            headers={"X-API-Key": SHOP_KEY, "traceparent": f"00-{trace_id}-{caller_span}-01"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text

        def spans_named() -> dict[str, ReceivedSpan]:
            return {span.name: span for span in receiver.in_trace(trace_id)}

        wanted = {"handle enrich_orders", "handle order_stats"}
        poll_until(lambda: wanted <= set(spans_named()), 60, what="both handlers' spans")
        spans = spans_named()
        server = spans["POST /v1/topics/orders/events"]
        publish = spans[f"publish {unique}orders"]
        enriched = spans["handle enrich_orders"]
        aggregated = spans["handle order_stats"]
        # Each hop is a child of the one before it, across three processes.
        assert server.parent_id == caller_span and server.kind == SPAN_KIND_SERVER
        assert publish.parent_id == server.span_id and publish.kind == SPAN_KIND_PRODUCER
        assert enriched.parent_id == publish.span_id
        # The enriched order carries the handler's span as its parent.
        assert aggregated.parent_id == enriched.span_id
        assert {server.service, enriched.service, aggregated.service} == {
            "pipeline-gateway",
            "pipeline-worker enrich_orders",
            "pipeline-worker order_stats",
        }
        # The batch spans are recorded too, each in a trace of its own.
        batches = [s for s in receiver.spans if s.name == f"process {unique}orders"]
        assert batches and all(s.trace_id != trace_id for s in batches)
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(timeout=60)
        for replica in (enrich, stats):
            assert replica.stop() == 0, replica.tail()
