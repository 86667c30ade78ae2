"""Telemetry from real processes: every metric the dashboard and the alerts use is served.

A gateway (two processes), both example workers and a supervisor run
against the broker; after some traffic (and one record that must be
dead-lettered) each is scraped once, and every metric name in
infra/grafana and infra/prometheus must be among what they serve.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import urllib.request
from pathlib import Path

import httpx
import pytest
import yaml

from pipeline.dev.processes import free_ports
from pipeline.kafka.aiokafka.probe import run_sync
from pipeline.kafka.connect import connect
from pipeline.ops.topics import ensure_topics
from pipeline.paths import project_dir
from pipeline.scaling.worker_process import PIPELINE
from pipeline.settings import PipelineSettings
from tests.integration.test_example_pipeline import Pipeline
from tests.integration.test_gateway import (
    SHOP_KEY,
    order,
    start_gateway,
    wait_connected,
    wait_status,
)
from tests.replicas import poll_until
from topics import CATALOGUE

pytestmark = [pytest.mark.integration, pytest.mark.slow]

INFRA = project_dir() / "infra"
METRIC_NAME = re.compile(r"\b((?:pipeline|process|python)_[a-z0-9_]+)\b")


def names_in_promql(expr: str) -> set[str]:
    return set(METRIC_NAME.findall(expr))


def dashboard_names() -> set[str]:
    dashboard = json.loads((INFRA / "grafana/dashboards/pipeline.json").read_text())
    names: set[str] = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            names |= names_in_promql(target["expr"])
    for variable in dashboard["templating"]["list"]:
        names |= names_in_promql(str(variable.get("query", "")))
    return names


def rule_names() -> set[str]:
    rules = yaml.safe_load((INFRA / "prometheus/alerts.yml").read_text())
    return {
        name
        for group in rules["groups"]
        for rule in group["rules"]
        for name in names_in_promql(rule["expr"])
    }


def served_names(text: str) -> set[str]:
    """Names with at least one sample: a declared family with no series is not enough."""
    return {
        line.split("{", 1)[0].split(" ", 1)[0]
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return str(reply.read().decode())


def test_every_metric_of_the_dashboard_and_the_alerts_is_served(
    settings: PipelineSettings, unique: str, postgres_url: str, tmp_path: Path
) -> None:
    wanted_by_dashboard = dashboard_names()
    wanted_by_rules = rule_names()
    assert len(wanted_by_dashboard) >= 15 and len(wanted_by_rules) >= 6  # the parsing works

    run_sync(ensure_topics(connect(settings), CATALOGUE.with_prefix(unique).with_dlqs()))
    pipeline = Pipeline(settings, unique, postgres_url, tmp_path)
    customer = pipeline.customer(1)
    pipeline.publish("customers", [customer])
    enrich = pipeline.start("e1", "enrich_orders")
    stats = pipeline.start("s1", "order_stats")
    url, gateway = start_gateway(
        settings.bootstrap_servers, unique, str(tmp_path / "gw.log"), "--workers", "2"
    )
    supervisor_port = free_ports(1)[0]
    supervisor = subprocess.Popen(
        [
            PIPELINE,
            "scale",
            "enrich_orders",
            "--recommend-only",
            "--interval",
            "1s",
            "--metrics-port",
            str(supervisor_port),
        ],
        cwd=project_dir(),
        env={**os.environ, **pipeline.env},
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "supervisor.log", "wb"),  # noqa: SIM115
    )
    try:
        wait_status(url, "/readyz", 200)
        wait_connected(str(tmp_path / "gw.log"), 2)
        enrich.wait_ready()
        stats.wait_ready()
        for _ in range(5):
            answer = httpx.post(
                url + "/v1/topics/orders/events",
                json=order(customer_id=customer.customer_id),
                headers={"X-API-Key": SHOP_KEY},
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
        # An order whose customer exists nowhere: dead-lettered, with its error type.
        answer = httpx.post(
            url + "/v1/topics/orders/events",
            json=order(customer_id=f"{unique}nobody"),
            headers={"X-API-Key": SHOP_KEY},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        poll_until(
            lambda: (
                enrich.metric("pipeline_dead_lettered_total") >= 1
                and stats.metric("pipeline_processed_total") >= 5
                # a timed record's stages are observed once its offset is committed
                and enrich.metric("pipeline_record_stage_seconds_count") >= 1
            ),
            60,
            what="the orders handled, the bad one dead-lettered, a record's stages timed",
        )
        supervisor_url = f"http://127.0.0.1:{supervisor_port}/metrics"
        poll_until(
            lambda: "pipeline_group_lag_seconds{" in scrape(supervisor_url),
            60,
            what="the supervisor's first lag sample",
        )
        served = set()
        for text in (
            enrich.get("/metrics")[1],
            stats.get("/metrics")[1],
            scrape(url + "/metrics"),
            scrape(supervisor_url),
        ):
            served |= served_names(text)
        assert wanted_by_dashboard - served == set()
        assert wanted_by_rules - served == set()
    finally:
        supervisor.send_signal(signal.SIGTERM)
        supervisor.wait(timeout=60)
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(timeout=60)
        for replica in (enrich, stats):
            assert replica.stop() == 0, replica.tail()
    # Their logs are JSON (not a terminal), and a partition's lines say which partition.
    lines = [json.loads(line) for line in enrich.log_path.read_text().splitlines() if line]
    assert all({"ts", "level", "logger", "message", "replica"} <= set(line) for line in lines)
    assert all(line["processor"] == "enrich_orders" and line["replica"] == "e1" for line in lines)
    dead_lettered = [line for line in lines if "dead-letter" in str(line["message"]).lower()]
    assert dead_lettered and all("partition" in line for line in dead_lettered), lines[-5:]
