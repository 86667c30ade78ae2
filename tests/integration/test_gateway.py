"""The HTTP ingest gateway against a real broker: every status code, and what the topic holds."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest

from pipeline.dev.processes import free_ports
from pipeline.gateway.auth import hash_key
from pipeline.kafka.aiokafka.probe import run_sync
from pipeline.kafka.connect import connect
from pipeline.ops.topics import ensure_topics
from pipeline.paths import project_dir
from pipeline.reading.offsets import end_offsets
from pipeline.scaling.worker_process import PIPELINE, parse_metrics
from pipeline.settings import PipelineSettings
from pipeline.wire.codec import HEADER_EVENT_ID, header_value
from tests.replicas import poll_until
from tests.support import read_all
from topics import CATALOGUE

pytestmark = [pytest.mark.integration]

# uvicorn re-raises SIGTERM once it has shut down gracefully, so a clean stop may report it.
CLEAN_EXIT = (0, -signal.SIGTERM)
SHOP_KEY = "shop-" + uuid.uuid4().hex
ADMIN_KEY = "admin-" + uuid.uuid4().hex


@dataclass
class Running:
    url: str
    prefix: str
    settings: PipelineSettings
    process: subprocess.Popen[bytes]

    def count(self, topic: str) -> int:
        return sum(run_sync(end_offsets(connect(self.settings), self.prefix + topic)).values())

    def counts(self) -> dict[str, int]:
        return {name: self.count(name) for name in ("orders", "customers", "orders.enriched")}


def start_gateway(
    bootstrap: str, prefix: str, log: str, *extra: str, env: dict[str, str] | None = None
) -> tuple[str, Any]:
    """`pipeline gateway` with the shop and admin keys; `env` overrides its settings."""
    port = free_ports(1)[0]
    keys = [
        {"name": "shop", "sha256": hash_key(SHOP_KEY), "topics": ["orders"]},
        {"name": "admin", "sha256": hash_key(ADMIN_KEY), "topics": ["*"]},
    ]
    environment = {
        **os.environ,
        "PIPELINE_BOOTSTRAP_SERVERS": bootstrap,
        "PIPELINE_TOPIC_PREFIX": prefix,
        "PIPELINE_GATEWAY__API_KEYS": json.dumps(keys),
        "PIPELINE_GATEWAY__MAX_BODY_BYTES": "65536",
        "PIPELINE_GATEWAY__MAX_BATCH_EVENTS": "50",
        "PIPELINE_GATEWAY__PUBLISH_TIMEOUT_S": "3",
        **(env or {}),
    }
    process = subprocess.Popen(
        [PIPELINE, "gateway", "--port", str(port), *extra],
        cwd=project_dir(),
        env=environment,
        stdout=open(log, "wb"),  # noqa: SIM115 - the process owns it
        stderr=subprocess.STDOUT,
    )
    return f"http://127.0.0.1:{port}", process


def wait_connected(log: str, workers: int, timeout_s: float = 60) -> None:
    """Every gateway worker process has its producer: /readyz answers for whichever worker
    the kernel hands the probe to, and a publish to another one would get 503 meanwhile."""

    def connected() -> int:
        return len(re.findall(r"\bconnected to \d", Path(log).read_text(errors="replace")))

    poll_until(lambda: connected() >= workers, timeout_s, what=f"{workers} workers connected")


def wait_status(url: str, path: str, status: int, timeout_s: float = 60) -> None:
    def answered() -> bool:
        try:
            return httpx.get(url + path, timeout=2).status_code == status
        except httpx.HTTPError:
            return False

    poll_until(answered, timeout_s, what=f"{path} to answer {status}")


@pytest.fixture(scope="module")
def gateway(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    prefix = f"g{uuid.uuid4().hex[:8]}."
    settings = PipelineSettings(bootstrap_servers=kafka_bootstrap)
    run_sync(ensure_topics(connect(settings), CATALOGUE.with_prefix(prefix).with_dlqs()))
    log = str(tmp_path_factory.mktemp("gateway") / "gateway.log")
    url, process = start_gateway(kafka_bootstrap, prefix, log, "--workers", "2")
    try:
        wait_status(url, "/readyz", 200)
        wait_connected(log, 2)
        yield Running(url, prefix, settings, process)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def order(**overrides: Any) -> dict[str, Any]:
    return {
        "order_id": "ord-" + uuid.uuid4().hex[:12],
        "customer_id": "cust-0000042",
        "amount": "12.50",
        "currency": "EUR",
        "country": "DE",
        "placed_at": "2026-11-28T10:00:00Z",
        **overrides,
    }


def post(gateway: Running, path: str, key: str | None = SHOP_KEY, **kwargs: Any) -> httpx.Response:
    headers = kwargs.pop("headers", {})
    if key is not None:
        headers["X-API-Key"] = key
    return httpx.post(gateway.url + path, headers=headers, timeout=30, **kwargs)


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert "error" in body, body
    error: dict[str, Any] = body["error"]
    return error


def test_one_event_is_acknowledged_with_where_it_was_stored(gateway: Running) -> None:
    before = gateway.count("orders")
    response = post(gateway, "/v1/topics/orders/events", json=order())
    assert response.status_code == 200, response.text
    [published] = response.json()["events"]
    assert gateway.count("orders") == before + 1
    records = run_sync(read_all(connect(gateway.settings), gateway.prefix + "orders"))
    stored = [r for r in records if r.partition == published["partition"]]
    found = [r for r in stored if r.offset == published["offset"]]
    assert header_value(found[0].headers, HEADER_EVENT_ID) == published["event_id"]


def test_batches_as_json_ndjson_and_msgpack(gateway: Running) -> None:
    before = gateway.count("orders")
    as_json = post(gateway, "/v1/topics/orders/events:batch", json=[order() for _ in range(10)])
    ndjson = "\n".join(json.dumps(order()) for _ in range(5)) + "\n"
    as_ndjson = post(
        gateway,
        "/v1/topics/orders/events:batch",
        content=ndjson,
        headers={"Content-Type": "application/x-ndjson"},
    )
    as_msgpack = post(
        gateway,
        "/v1/topics/orders/events:batch",
        content=msgpack.packb([order() for _ in range(5)]),
        headers={"Content-Type": "application/msgpack"},
    )
    for response, count in ((as_json, 10), (as_ndjson, 5), (as_msgpack, 5)):
        assert response.status_code == 200, response.text
        assert len(response.json()["events"]) == count
    assert gateway.count("orders") == before + 20


def test_every_rejection_names_the_problem_and_publishes_nothing(gateway: Running) -> None:
    before = gateway.counts()
    cases = [
        (
            post(
                gateway,
                "/v1/topics/orders/events",
                content=b"{not json",
                headers={"Content-Type": "application/json"},
            ),
            400,
            "malformed_body",
        ),
        (post(gateway, "/v1/topics/nope/events", json=order()), 404, "unknown_topic"),
        (
            post(
                gateway,
                "/v1/topics/orders/events",
                content=b"x" * 70_000,
                headers={"Content-Type": "application/json"},
            ),
            413,
            "body_too_large",
        ),
        (
            post(gateway, "/v1/topics/orders/events:batch", json=[order() for _ in range(51)]),
            413,
            "batch_too_large",
        ),
        (
            post(
                gateway,
                "/v1/topics/orders/events",
                content=b"hello",
                headers={"Content-Type": "text/plain"},
            ),
            415,
            "unsupported_media_type",
        ),
        (post(gateway, "/v1/topics/orders/events", key=None, json=order()), 401, "missing_api_key"),
        (
            post(gateway, "/v1/topics/orders/events", key="wrong", json=order()),
            401,
            "unknown_api_key",
        ),
        (
            post(gateway, "/v1/topics/customers/events", json={"customer_id": "c"}),
            403,
            "topic_not_allowed",
        ),
    ]
    for response, status, reason in cases:
        assert response.status_code == status, (status, response.text)
        assert error_of(response)["reason"] == reason
    assert cases[5][0].headers["WWW-Authenticate"] == "ApiKey"

    invalid = post(gateway, "/v1/topics/orders/events", json=order(amount="-3", currency="XYZ"))
    assert invalid.status_code == 422
    fields = {e["field"] for e in error_of(invalid)["items"][0]["errors"]}
    assert fields == {"amount", "currency"}

    batch = [
        order(),
        order(lines=[{"sku": "a", "quantity": 0, "unit_price": "1"}]),
        order(),
        order(country="germany"),
        order(),
    ]
    rejected = post(gateway, "/v1/topics/orders/events:batch", json=batch)
    assert rejected.status_code == 422
    items = error_of(rejected)["items"]
    assert [item["index"] for item in items] == [1, 3]
    assert items[0]["errors"][0]["field"] == "lines.0.quantity"
    assert gateway.counts() == before, "a rejected request published something"


def test_an_idempotency_key_publishes_once_and_repeats_the_answer(gateway: Running) -> None:
    before = gateway.count("orders")
    key = {"Idempotency-Key": "checkout-" + uuid.uuid4().hex}
    body = order()
    first = post(gateway, "/v1/topics/orders/events", json=body, headers=dict(key))
    # Two processes serve the port: repeat until the same one answers within the window.
    repeats = [
        post(gateway, "/v1/topics/orders/events", json=body, headers=dict(key)) for _ in range(6)
    ]
    assert first.status_code == 200 and all(r.status_code == 200 for r in repeats)
    first_id = first.json()["events"][0]["event_id"]
    assert {r.json()["events"][0]["event_id"] for r in repeats} == {first_id}
    replayed = [r for r in repeats if r.json().get("replayed")]
    assert replayed, "no repeat was answered from the window"
    published = gateway.count("orders") - before
    # At most one publish per process, and every copy carries the same event id.
    assert 1 <= published <= 2
    assert published == 1 + (len(repeats) - len(replayed))


def test_topics_openapi_and_metrics(gateway: Running) -> None:
    topics = httpx.get(gateway.url + "/v1/topics", timeout=10).json()["topics"]
    assert {t["name"] for t in topics} == {
        "orders",
        "customers",
        "orders.enriched",
        "revenue.per_minute",
    }
    assert "amount" in next(t for t in topics if t["name"] == "orders")["schema"]["properties"]
    document = httpx.get(gateway.url + "/openapi.json", timeout=10).json()
    assert {"Order", "Customer", "EnrichedOrder"} <= set(document["components"]["schemas"])
    assert "/v1/topics/orders/events:batch" in document["paths"]
    metrics = httpx.get(gateway.url + "/metrics", timeout=10).text
    assert "pipeline_gateway_requests_total" in metrics
    assert "pipeline_gateway_request_seconds_bucket" in metrics
    assert 'pipeline_gateway_breaker_state{dependency="kafka"}' in metrics
    assert "process_resident_memory_bytes" in metrics


def test_one_scrape_sums_every_gateway_process(gateway: Running) -> None:
    """Two processes behind the port: one scrape counts the requests both answered."""

    def healthz_requests() -> float:
        text = httpx.get(gateway.url + "/metrics", timeout=10).text
        return parse_metrics(
            "\n".join(line for line in text.splitlines() if 'route="/healthz"' in line)
        ).get("pipeline_gateway_requests_total", 0.0)

    before = healthz_requests()
    sent = 60
    for _ in range(sent):
        # A new connection each time, so the kernel spreads them over both processes.
        with httpx.Client(timeout=10) as client:
            assert client.get(gateway.url + "/healthz").status_code == 200
    # Whichever process answers the scrape, it reports every process's requests.
    for _ in range(4):
        assert healthz_requests() - before == sent


def test_an_unreachable_broker_gets_503_with_retry_after(gateway: Running, tmp_path: Any) -> None:
    dead = f"127.0.0.1:{free_ports(1)[0]}"
    url, process = start_gateway(dead, gateway.prefix, str(tmp_path / "dead.log"))
    try:
        wait_status(url, "/readyz", 503, timeout_s=30)
        response = httpx.post(
            url + "/v1/topics/orders/events",
            json=order(),
            headers={"X-API-Key": SHOP_KEY},
            timeout=30,
        )
        assert response.status_code == 503
        assert error_of(response)["reason"] == "broker_unreachable"
        assert int(response.headers["Retry-After"]) >= 1
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) in CLEAN_EXIT


def test_sigterm_finishes_in_flight_requests_and_exits_cleanly(
    kafka_bootstrap: str, gateway: Running, tmp_path: Any
) -> None:
    url, process = start_gateway(kafka_bootstrap, gateway.prefix, str(tmp_path / "g.log"))
    wait_status(url, "/readyz", 200)
    before = gateway.count("orders")
    with httpx.Client(timeout=30) as client:
        response = client.post(
            url + "/v1/topics/orders/events:batch",
            json=[order() for _ in range(50)],
            headers={"X-API-Key": SHOP_KEY},
        )
        process.send_signal(signal.SIGTERM)
    assert response.status_code == 200
    assert process.wait(timeout=30) in CLEAN_EXIT
    assert gateway.count("orders") == before + 50
    started = time.monotonic()
    with pytest.raises(httpx.HTTPError):
        httpx.get(url + "/healthz", timeout=2)
    assert time.monotonic() - started < 5
