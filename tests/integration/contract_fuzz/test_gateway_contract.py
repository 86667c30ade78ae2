"""The gateway's OpenAPI document says exactly what it accepts: schemathesis, every check.

A real gateway on a real broker serves the example catalogue and a topic
of awkward types (awkward_catalogue.py); Schemathesis's CLI, as a user
would run it, generates requests from the published document, positive
and negative, and checks every answer (status, body and headers against
the document; schema-valid requests accepted, schema-violating ones
refused; requests without credentials refused). Once with API keys
configured, once without; and by hand: no key, a wrong key or another
topic's key never publishes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipeline.gateway.auth import hash_key
from pipeline.kafka.aiokafka.probe import run_sync
from pipeline.kafka.connect import connect
from pipeline.ops.topics import ensure_topics
from pipeline.paths import project_dir
from pipeline.reading.offsets import end_offsets
from pipeline.settings import PipelineSettings
from tests.integration.contract_fuzz.awkward_catalogue import CATALOGUE
from tests.integration.test_gateway import start_gateway, wait_connected, wait_status

pytestmark = [pytest.mark.integration]

ADMIN_KEY = "admin-" + uuid.uuid4().hex
ORDERS_KEY = "orders-" + uuid.uuid4().hex
SEED = 48
# 413 is the gateway's answer to a batch over maxItems (and a body over the byte limit);
# Schemathesis's default list for a schema-violating request does not name it.
CONFIG = """
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422"]
"""


@dataclass
class Served:
    url: str
    prefix: str
    settings: PipelineSettings

    def counts(self) -> dict[str, int]:
        client = connect(self.settings)
        return {
            spec.name: sum(run_sync(end_offsets(client, self.prefix + spec.name)).values())
            for spec in CATALOGUE
        }


@pytest.fixture(scope="module")
def topics(kafka_bootstrap: str) -> tuple[str, PipelineSettings]:
    prefix = f"c{uuid.uuid4().hex[:8]}."
    settings = PipelineSettings(bootstrap_servers=kafka_bootstrap)
    run_sync(ensure_topics(connect(settings), CATALOGUE.with_prefix(prefix).with_dlqs()))
    return prefix, settings


def serve(
    topics: tuple[str, PipelineSettings], folder: Path, keys: list[dict[str, Any]]
) -> Iterator[Served]:
    prefix, settings = topics
    log = str(folder / "gateway.log")
    url, process = start_gateway(
        settings.bootstrap_servers,
        prefix,
        log,
        env={
            "PIPELINE_CATALOGUE_MODULE": "tests.integration.contract_fuzz.awkward_catalogue",
            "PIPELINE_GATEWAY__API_KEYS": json.dumps(keys),
        },
    )
    try:
        wait_status(url, "/readyz", 200)
        wait_connected(log, 1)
        yield Served(url, prefix, settings)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


@pytest.fixture(scope="module")
def keyed(
    topics: tuple[str, PipelineSettings], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    keys = [
        {"name": "orders-only", "sha256": hash_key(ORDERS_KEY), "topics": ["orders"]},
        {"name": "admin", "sha256": hash_key(ADMIN_KEY), "topics": ["*"]},
    ]
    yield from serve(topics, tmp_path_factory.mktemp("keyed"), keys)


@pytest.fixture(scope="module")
def open_gateway(
    topics: tuple[str, PipelineSettings], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    yield from serve(topics, tmp_path_factory.mktemp("open"), [])


def fuzz(
    served: Served, folder: Path, examples: int, *headers: str, paths: str | None = None
) -> dict[str, int]:
    """`st run` with every check (on the operations whose path matches `paths`, or all);
    the figures of its summary. Fails with its report."""
    config = folder / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(config),
        "run",
        served.url + "/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(examples),
        "--seed",
        str(SEED),
        # One worker: with two threads, Hypothesis inside Schemathesis once failed on
        # CPython 3.11's parser ("AST constructor recursion depth mismatch").
        "--workers",
        "1",
        "--request-timeout",
        "30",
        *(part for header in headers for part in ("-H", header)),
        *(("--include-path-regex", paths) if paths else ()),
    ]
    environment = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.integration.contract_fuzz.hooks",
        "PYTHONPATH": str(project_dir()),
    }
    run = subprocess.run(
        command,
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = run.stdout + run.stderr
    (folder / "schemathesis.log").write_text(output)
    assert run.returncode == 0, output[-6000:]
    summary = re.search(r"(\d+) generated, (\d+) passed(?:, (\d+) skipped)?", output)
    assert summary, output[-3000:]
    generated, passed, skipped = (int(group or 0) for group in summary.groups())
    operations = re.search(r"Operations:\s+(\d+) selected", output)
    assert operations, output[-3000:]
    return {
        "operations": int(operations.group(1)),
        "generated": generated,
        "passed": passed,
        "skipped": skipped,
    }


# Per route; `make test-full` runs the few hundred, `make test` a short version.
EXAMPLES = [
    pytest.param(30, id="30-per-route"),
    pytest.param(300, id="300-per-route", marks=pytest.mark.full_size),
]


def check_coverage(figures: dict[str, int], operations: int) -> None:
    # A pair of routes per topic and the catalogue: every one was generated for.
    assert figures["operations"] == operations
    assert figures["generated"] >= figures["operations"] * 20
    # Schemathesis skips 3 coverage cases of each operation with security declared (0 on an
    # open gateway): the key is sent as a fixed header.
    assert figures["skipped"] <= 3 * figures["operations"], figures


@pytest.mark.parametrize("examples", EXAMPLES)
def test_the_document_holds_for_every_request_with_keys(
    keyed: Served, tmp_path: Path, examples: int
) -> None:
    before = keyed.counts()
    figures = fuzz(keyed, tmp_path, examples, f"X-API-Key: {ADMIN_KEY}")
    print("schemathesis, keys configured:", figures)
    check_coverage(figures, 2 * len(list(CATALOGUE)) + 1)
    after = keyed.counts()
    # Schema-valid requests were published, to the awkward topic too.
    assert after["payments"] > before["payments"]


@pytest.mark.parametrize("examples", EXAMPLES)
def test_the_document_holds_for_every_request_without_keys(
    open_gateway: Served, tmp_path: Path, examples: int
) -> None:
    """Keys change the document's security and the 401/403 answers only: in `make test`
    the open gateway is fuzzed on the awkward topic and the catalogue, all of it in full."""
    before = open_gateway.counts()
    short = examples < 100
    paths = r"/payments/|^/v1/topics$" if short else None
    figures = fuzz(open_gateway, tmp_path, examples, paths=paths)
    print("schemathesis, no keys:", figures)
    check_coverage(figures, 3 if short else 2 * len(list(CATALOGUE)) + 1)
    assert open_gateway.counts()["payments"] > before["payments"]


def payment() -> dict[str, Any]:
    return {
        "payment_id": str(uuid.uuid4()),
        "account_id": "acct-1",
        "amount": "12.50",
        "fee": "0.0125",
        "rate": 1.5,
        "paid_at": "2026-12-07T10:00:00Z",
        "tier": "gold",
        "method": {"kind": "card", "last4": "4242"},
        "reference": 7,
        "score": 0.5,
    }


def test_no_key_a_wrong_key_or_another_topics_key_never_publishes(keyed: Served) -> None:
    before = keyed.counts()
    refused = []
    for topic, body in (("payments", payment()), ("customers", {"customer_id": "c"})):
        for route, content in (("events", body), ("events:batch", [body])):
            url = f"{keyed.url}/v1/topics/{topic}/{route}"
            for headers, status in (
                ({}, 401),
                ({"X-API-Key": "not-a-key"}, 401),
                ({"Authorization": "Bearer not-a-key"}, 401),
                ({"Authorization": f"Basic {ADMIN_KEY}"}, 401),
                ({"X-API-Key": ORDERS_KEY}, 403),
                ({"Authorization": f"Bearer {ORDERS_KEY}"}, 403),
            ):
                answer = httpx.post(url, json=content, headers=headers, timeout=30)
                refused.append((topic, route, answer.status_code))
                assert answer.status_code == status, (url, headers, answer.text)
                assert answer.json()["error"]["status"] == status
                if status == 401:
                    assert answer.headers["WWW-Authenticate"] == "ApiKey"
    assert keyed.counts() == before, "a refused request published"
    # The same request with the right key is published: the refusals were the keys'.
    accepted = httpx.post(
        f"{keyed.url}/v1/topics/payments/events",
        json=payment(),
        headers={"X-API-Key": ADMIN_KEY},
        timeout=30,
    )
    assert accepted.status_code == 200, accepted.text
    assert keyed.counts()["payments"] == before["payments"] + 1
    assert len(refused) == 24
