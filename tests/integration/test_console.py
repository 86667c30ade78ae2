"""The web console in a real browser (Debian's chromium, driven by Playwright).

Against the broker: a worker, a supervisor, a replay and some load with one
order that must be dead-lettered. The pages' numbers are checked against
`pipeline lag --json`, the chart must draw, the dead letter's page must show
its headers, a redrive is previewed, refused without a key, and confirmed
once. Each page is saved as a screenshot in the folder the test prints.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipeline.dev.processes import free_ports
from pipeline.gateway.auth import hash_key
from pipeline.kafka.aiokafka.probe import run_sync
from pipeline.kafka.connect import connect
from pipeline.ops.topics import ensure_topics
from pipeline.paths import project_dir
from pipeline.scaling.worker_process import PIPELINE
from pipeline.settings import PipelineSettings
from pipeline.wire.codec import header_value
from tests.integration.test_example_pipeline import Pipeline
from tests.integration.test_gateway import wait_status
from tests.replicas import poll_until
from tests.support import read_all
from topics import CATALOGUE

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OPS_KEY = "ops-key-for-the-console-test"
ARTIFACTS = project_dir() / ".state" / "artifacts" / "console"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.fail("no chromium on PATH: `make browser` installs Debian's package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def number(text: str) -> int:
    return int(text.replace(",", "").strip())


def run_cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [PIPELINE, *args], cwd=project_dir(), env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_console_shows_what_the_cluster_holds_and_redrives_once(
    settings: PipelineSettings, unique: str, postgres_url: str, tmp_path: Path, browser: Any
) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    print(f"\nconsole screenshots: {ARTIFACTS}")
    catalogue = CATALOGUE.with_prefix(unique)
    run_sync(ensure_topics(connect(settings), catalogue.with_dlqs()))
    pipeline = Pipeline(settings, unique, postgres_url, tmp_path)
    customer = pipeline.customer(1)
    pipeline.publish("customers", [customer])
    # 20 orders, and one whose customer exists nowhere: dead-lettered.
    pipeline.publish("orders", [pipeline.order(customer.customer_id, n) for n in range(20)])
    pipeline.publish("orders", [pipeline.order(f"{unique}nobody", 99)])
    worker = pipeline.start("w1", "enrich_orders")
    env = {**os.environ, **pipeline.env}
    env["PIPELINE_CONSOLE__API_KEYS"] = json.dumps(
        [{"name": "ops", "sha256": hash_key(OPS_KEY), "topics": ["*"]}]
    )
    status_file = tmp_path / "scale.jsonl"
    supervisor = subprocess.Popen(
        [PIPELINE, "scale", "enrich_orders", "--recommend-only", "--interval", "1s",
         "--status-file", str(status_file)],
        cwd=project_dir(), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    port = free_ports(1)[0]
    console = subprocess.Popen(
        [PIPELINE, "console", "--port", str(port), "--interval", "1",
         "--metrics", f"http://127.0.0.1:{worker.port}/metrics", "--status-file", str(status_file)],
        cwd=project_dir(), env=env, stdout=open(tmp_path / "console.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    group = f"{unique}enrich_orders"
    orders, dlq = catalogue.get("orders").name, catalogue.get("orders").dlq_name
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    try:
        worker.wait_ready()
        pipeline.wait_handled(21)
        poll_until(lambda: worker.metric("pipeline_dead_lettered_total") == 1, 60, what="the DLQ")

        wait_status(url, "/api/overview", 200)
        poll_until(
            lambda: status_file.exists() and len(status_file.read_text().splitlines()) >= 3,
            60,
            what="three autoscaler decisions",
        )

        # The group, live: its member, the worker's figures, the decisions and their chart.
        def members_shown() -> bool:
            page.goto(f"{url}/groups/{group}")
            return bool(page.locator("#members td.member").count() == 1)

        poll_until(members_shown, 30, what="the worker among the group's members")
        page.wait_for_selector("#replica-chart .uplot")
        assert "w1" in page.inner_text("#workers")
        assert "postgres: closed" in page.inner_text("#workers")
        assert page.locator("#decisions tbody tr").count() >= 3
        page.screenshot(path=str(ARTIFACTS / "group.png"), full_page=True)

        # Stopped, the group's lag stands still: the page and `pipeline lag` must agree.
        assert worker.stop() == 0, worker.tail()
        pipeline.publish("orders", [pipeline.order(customer.customer_id, n) for n in range(7)])
        lag_args = ["lag", "--group", group, "--topic", orders, "--json", "--no-age"]
        cli = json.loads(run_cli(env, *lag_args, "--interval", "0.5"))
        assert cli["lag"] == 7

        def page_lags() -> dict[int, tuple[int, int]]:
            page.goto(f"{url}/groups/{group}")
            found = {}
            for row in page.locator("#partitions tbody tr").all():
                cells = [c.inner_text() for c in row.locator("td").all()]
                if cells[0] == orders:
                    found[int(cells[1])] = (number(cells[2]), number(cells[4]))
            return found

        top = run_cli({**env, "COLUMNS": "200"}, "top", "--once", "--interval", "0.5")
        (line,) = [row for row in top.splitlines() if f"{group} " in row and f"{orders} " in row]
        cells = [cell.strip() for cell in line.split("│")]
        assert cells[5] == "7", top  # the same lag in the terminal view: the lag column
        expected = {p["partition"]: (p["end_offset"], p["lag"]) for p in cli["partitions"]}
        poll_until(lambda: page_lags() == expected, 30, what=f"the page to show {expected}")

        # The overview: lag per group and a chart of the last minutes that draws.
        page.goto(url + "/")
        row = page.locator(f"#groups tr[data-group='{group}']")
        assert number(row.locator("td[data-field=lag]").inner_text()) == 7
        poll_until(
            lambda: (
                page.locator("#lag-chart .uplot canvas").count() == 1
                and int(page.get_attribute("#lag-chart", "data-points") or 0) >= 2
            ),
            30,
            what="the lag chart to draw two samples",
        )
        assert number(page.inner_text(f"[data-dlq-count='{dlq}']")) == 1
        page.screenshot(path=str(ARTIFACTS / "overview.png"), full_page=True)

        # The dead letter: listed by cause, its page shows its headers and body.
        page.goto(f"{url}/dlq/{dlq}")
        assert "PermanentError" in page.inner_text("#causes")
        page.screenshot(path=str(ARTIFACTS / "dlq.png"), full_page=True)
        page.click("#records tbody tr a")
        headers = page.inner_text("#headers")
        for name in ("dlq-error-type", "dlq-source-topic", "dlq-source-offset", "event-id"):
            assert name in headers
        assert f"{unique}nobody" in page.inner_text("#body")
        page.screenshot(path=str(ARTIFACTS / "dlq-record.png"), full_page=True)

        # Redrive: the preview sends nothing; without a key, refused; with it, once.
        before = len(run_sync(read_all(connect(settings), orders)))
        page.goto(f"{url}/dlq/{dlq}/redrive")
        assert page.inner_text("#summary").startswith("1 record(s) would be sent")
        assert f"{orders}-" in page.inner_text("#to-send")
        page.screenshot(path=str(ARTIFACTS / "redrive-preview.png"), full_page=True)
        token = page.get_attribute("form#confirm", "data-token")
        assert len(run_sync(read_all(connect(settings), orders))) == before
        refused = httpx.post(f"{url}/api/dlq/{dlq}/redrive", params={"token": token}, timeout=30)
        assert refused.status_code == 401, refused.text
        page.fill("form#confirm input[name=key]", "a-wrong-key")
        page.click("form#confirm button")
        page.wait_for_selector("#outcome.bad")
        assert "refused (401)" in page.inner_text("#outcome")
        page.fill("form#confirm input[name=key]", OPS_KEY)
        page.click("form#confirm button")
        page.wait_for_function(
            "document.querySelector('#outcome').textContent.startsWith('redrove')"
        )
        assert "redrove 1 record(s)" in page.inner_text("#outcome")
        page.screenshot(path=str(ARTIFACTS / "redrive-done.png"), full_page=True)
        again = httpx.post(
            f"{url}/api/dlq/{dlq}/redrive",
            params={"token": token},
            headers={"X-API-Key": OPS_KEY},
            timeout=30,
        )
        assert again.status_code == 409, again.text  # the same confirmation twice sends nothing
        back = [
            r
            for r in run_sync(read_all(connect(settings), orders))
            if header_value(r.headers, "redrive-count") is not None
        ]
        assert len(back) == 1 and header_value(back[0].headers, "redrive-count") == "1"

        # Replays: a finished backfill, with its progress.
        run_cli(env, "replay", "--processor", "enrich_orders", "--name", f"{unique}backfill")

        def replay_row() -> str:
            page.goto(url + "/replays")
            return str(page.inner_text("#replays"))

        # The console samples every second: the finished replay shows at the next sample.
        poll_until(lambda: "finished" in replay_row(), 30, what="the replay shown finished")
        assert f"replay.{unique}backfill" in replay_row()
        page.screenshot(path=str(ARTIFACTS / "replays.png"), full_page=True)
        assert page_errors == []
    finally:
        page.close()
        for process in (console, supervisor):
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
        if worker.running:
            worker.signal(signal.SIGKILL)
            worker.wait()
