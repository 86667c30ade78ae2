"""A real faust-streaming worker and our workers on the same topics, both ways."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.dev.processes import stop_gently
from pipeline.paths import project_dir
from tests.integration.test_example_pipeline import Pipeline, pipeline
from tests.replicas import poll_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]
__all__ = ["pipeline"]  # the example pipeline's fixture: topics applied, replicas killed after

FAUST_APP = project_dir() / "tests" / "integration" / "faust_apps" / "orders_app.py"
ORDERS = 300
CUSTOMERS = 50


def received(out: Path) -> dict[str, str]:
    if not out.exists():
        return {}
    lines = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    return {line["order_id"]: line["name"] for line in lines}


def test_faust_publishes_orders_our_worker_enriches_and_a_faust_agent_reads_them(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    customers = [pipeline.customer(i) for i in range(CUSTOMERS)]
    pipeline.publish("customers", customers)
    replica = pipeline.start()
    replica.wait_ready()

    out = tmp_path / "faust-received.jsonl"
    log = tmp_path / "faust.log"
    faust_worker = subprocess.Popen(
        [sys.executable, str(FAUST_APP), "worker", "-l", "warn"],
        cwd=project_dir(),
        env={
            **os.environ,
            **pipeline.env,
            "FAUST_ORDERS": str(ORDERS),
            "FAUST_CUSTOMERS": str(CUSTOMERS),
            "FAUST_OUT": str(out),
            "FAUST_DATADIR": str(tmp_path / "faust-data"),
        },
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        poll_until(
            lambda: len(received(out)) >= ORDERS or faust_worker.poll() is not None,
            120,
            what=f"the faust agent receiving {ORDERS} enriched orders",
        )
        assert faust_worker.poll() is None, log.read_text()[-3000:]
    finally:
        stop_gently(faust_worker, timeout_s=30)
    got = received(out)
    assert set(got) == {f"{pipeline.prefix}faust-{n}" for n in range(ORDERS)}
    names = {c.customer_id: c.name for c in customers}
    assert all(
        got[f"{pipeline.prefix}faust-{n}"] == names[f"{pipeline.prefix}cust-{n % CUSTOMERS:07d}"]
        for n in range(ORDERS)
    )
    # Our worker took faust's records as its own: nothing dead-lettered.
    assert pipeline.count(pipeline.catalogue.get("orders").dlq_name) == 0
    assert replica.metric("pipeline_processed_total") >= ORDERS
    assert replica.stop() == 0
