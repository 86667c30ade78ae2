"""A SASL_SSL cluster with ACLs: the commands and processes as the application principal.

`pipeline infra up --security sasl_ssl` in a folder of its own: a local CA,
SCRAM-SHA-512 users `admin` and `app`, the StandardAuthorizer, and ACLs that
give `app` only `app.*`. Everything here runs as `app`, from the settings
file infra wrote, in real processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pipeline.dev.localkafka import LocalKafka
from pipeline.dev.processes import free_ports
from pipeline.dev.secured import Secured
from pipeline.gateway.auth import hash_key
from pipeline.paths import cache_dir, project_dir
from pipeline.scaling.worker_process import PIPELINE
from tests.integration.test_gateway import wait_status
from tests.replicas import Replica, poll_until
from tests.support import log_progress

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GATEWAY_KEY = "gateway-key-of-the-secured-test"


class SecuredCluster:
    def __init__(self, cluster: LocalKafka, secured: Secured, folder: Path) -> None:
        self.cluster = cluster
        self.secured = secured
        self.folder = folder
        state = cluster.load_state()
        assert state is not None
        self.bootstrap = state.bootstrap

    def env(self, **more: str) -> dict[str, str]:
        """The app principal's settings as `infra up` wrote them, and nothing of the caller's."""
        kept = {k: v for k, v in os.environ.items() if not k.startswith(("PIPELINE_", "KAFKA_"))}
        written = dict(
            line.split("=", 1)
            for line in (self.secured.folder / "app.env").read_text().splitlines()
            if line
        )
        return {**kept, **written, "PIPELINE_STATE_DIR": str(self.folder / "state"), **more}

    @property
    def password(self) -> str:
        return self.env()["PIPELINE_SASL_PASSWORD"]

    def run(self, *args: str, expect: int = 0, **env: str) -> str:
        done = subprocess.run(
            [PIPELINE, *args],
            cwd=project_dir(),
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=180,
        )
        output = done.stdout + done.stderr
        assert done.returncode == expect, f"pipeline {' '.join(args)}: {output}"
        assert self.password not in output
        return " ".join(output.split())  # as one line: the terminal's wrapping undone


@pytest.fixture(scope="module")
def secured() -> Iterator[SecuredCluster]:
    with tempfile.TemporaryDirectory(prefix="pipeline-test-secured-") as folder:
        cluster = LocalKafka(Path(folder) / "kafka", cache_dir(), heap_mb=320)
        try:
            cluster.up(brokers=1, security="sasl_ssl", progress=log_progress)
            found = cluster.secured
            assert found is not None
            yield SecuredCluster(cluster, found, Path(folder))
        finally:
            cluster.down()


def test_the_commands_and_a_worker_run_as_the_application(
    secured: SecuredCluster, postgres_url: str, tmp_path: Path
) -> None:
    secured.run("topics", "apply")
    customers = tmp_path / "customers.jsonl"
    customers.write_text(
        json.dumps(
            {
                "customer_id": "c-1",
                "name": "Ada",
                "country": "DE",
                "signed_up_at": "2026-11-01T00:00:00Z",
                "updated_at": "2026-11-01T00:00:00Z",
            }
        )
        + "\n"
    )
    orders = tmp_path / "orders.jsonl"
    lines = [
        {"order_id": f"o-{n}", "customer_id": "c-1" if n else "nobody", "amount": "9.50",
         "currency": "EUR", "country": "DE", "placed_at": "2026-11-28T10:00:00Z"}
        for n in range(30)
    ]  # fmt: skip
    orders.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert "1 published" in secured.run("produce", "--topic", "customers", "--file", str(customers))
    assert "30 published" in secured.run("produce", "--topic", "orders", "--file", str(orders))

    env = secured.env(PIPELINE_DATABASE_URL=postgres_url)
    worker = Replica("enrich_orders", "w1", env, tmp_path / "logs", "--log-level", "DEBUG")
    try:
        worker.wait_ready()
        poll_until(
            lambda: (
                worker.metric("pipeline_processed_total") >= 29
                and worker.metric("pipeline_dead_lettered_total") == 1
            ),
            60,
            what="29 orders enriched and one dead-lettered",
        )
        lag = json.loads(
            secured.run("lag", "--processor", "enrich_orders", "--json", "--interval", "0.5")
        )
        assert lag["group"] == "app.enrich_orders" and lag["lag"] == 0
    finally:
        assert worker.stop() == 0, worker.tail()
    assert secured.password not in worker.log_path.read_text()  # a DEBUG run's every line

    inspected = secured.run("dlq", "inspect", "--topic", "orders.dlq")
    assert "PermanentError" in inspected
    assert "would redrive 1" in secured.run("dlq", "redrive", "--topic", "orders.dlq", "--dry-run")
    # For real: back to app.orders, progress in the group dlq-redrive.app.orders.dlq.
    assert "redrove 1 record(s)" in secured.run("dlq", "redrive", "--topic", "orders.dlq")
    secured.run(
        "offsets", "reset", "--group", "app.enrich_orders", "--topic", "orders",
        "--shift-by", "-5",
    )  # fmt: skip
    replayed = secured.run(
        "replay", "--processor", "enrich_orders", "--name", "app.backfill",
        PIPELINE_DATABASE_URL=postgres_url,
    )  # fmt: skip
    assert "replay.app.backfill" in replayed


def test_the_gateway_publishes_as_the_application(secured: SecuredCluster, tmp_path: Path) -> None:
    secured.run("topics", "apply")
    port = free_ports(1)[0]
    keys = json.dumps([{"name": "shop", "sha256": hash_key(GATEWAY_KEY), "topics": ["*"]}])
    log = tmp_path / "gateway.log"
    gateway = subprocess.Popen(
        [PIPELINE, "gateway", "--port", str(port)],
        cwd=project_dir(),
        env=secured.env(PIPELINE_GATEWAY__API_KEYS=keys),
        stdout=open(log, "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_status(url, "/readyz", 200)
        answer = httpx.post(
            url + "/v1/topics/orders/events",
            headers={"X-API-Key": GATEWAY_KEY},
            json={
                "order_id": "g-1",
                "customer_id": "c-1",
                "amount": "1.00",
                "currency": "EUR",
                "country": "DE",
                "placed_at": "2026-11-28T10:00:00Z",
            },
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(timeout=60)
    assert secured.password not in log.read_text()


def test_each_refusal_is_one_message_naming_what_to_fix(
    secured: SecuredCluster, tmp_path: Path
) -> None:
    wrong = secured.run("topics", "list", expect=2, PIPELINE_SASL_PASSWORD="not-the-password")
    assert "refused the credentials of user 'app'" in wrong
    assert wrong.count("error:") == 1 and "Traceback" not in wrong
    from pipeline.dev.pki import LocalCA

    stranger = tmp_path / "other-ca"  # pytest's: not left behind in /tmp
    stranger.mkdir()
    other_ca = LocalCA(stranger).create().certificate_path
    unknown = secured.run("topics", "list", expect=2, PIPELINE_SSL_CAFILE=str(other_ca))
    assert "not signed by a CA this client trusts" in unknown and "PIPELINE_SSL_CAFILE" in unknown
    denied = secured.run("topics", "apply", expect=2, PIPELINE_TOPIC_PREFIX="other.")
    assert "other." in denied and "no ACL lets this principal use the topic" in denied


def test_an_exactly_once_worker_and_the_autoscaler_run_as_the_application(
    secured: SecuredCluster, tmp_path: Path
) -> None:
    """Transactions need the app's transactional ids; the supervisor its group's offsets."""
    from pipeline.kafka.aiokafka.probe import run_sync
    from pipeline.kafka.connect import connect
    from pipeline.ops.topics import ensure_topics
    from pipeline.publishing.producer import EventProducer
    from pipeline.reading.offsets import end_offsets
    from tests.integration.processors import SOURCE, TOPICS, Keyed

    app = secured.secured.settings("app", secured.bootstrap)
    specs = [spec.with_name(app.topic_prefix + spec.name) for spec in TOPICS]
    run_sync(ensure_topics(connect(app), specs, app.topic_prefix))

    async def publish() -> None:
        async with EventProducer(app) as producer:
            await producer.publish_many(
                SOURCE.with_name(app.topic_prefix + SOURCE.name),
                [Keyed(key=f"k{n % 10}", seq=n) for n in range(200)],
            )

    run_sync(publish())
    env = secured.env(PIPELINE_PROCESSORS_MODULE="tests.integration.processors")
    worker = Replica("passthrough_eos", "e1", env, tmp_path / "logs")
    status = tmp_path / "scale.jsonl"
    supervisor = subprocess.Popen(
        [PIPELINE, "scale", "passthrough_eos", "--recommend-only", "--interval", "1s",
         "--status-file", str(status)],
        cwd=project_dir(), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    output = f"{app.topic_prefix}runtime.out"
    try:
        poll_until(
            lambda: sum(run_sync(end_offsets(connect(app), output)).values()) >= 200,
            90,
            what="200 outputs written in transactions",
        )
        poll_until(
            lambda: status.exists() and len(status.read_text().splitlines()) >= 2,
            60,
            what="two autoscaler decisions on the secured cluster",
        )
        assert worker.metric("pipeline_processed_total") == 200
    finally:
        supervisor.send_signal(signal.SIGTERM)
        supervisor.wait(timeout=60)
        assert worker.stop() == 0, worker.tail()
    decision = json.loads(status.read_text().splitlines()[-1])
    assert decision["group"] == f"{app.topic_prefix}passthrough_eos" and decision["lag"] == 0


def test_the_confluent_client_explains_a_refused_login_too(secured: SecuredCluster) -> None:
    """librdkafka reports the cause in a callback, after "Failed to get metadata"."""
    wrong = secured.run(
        "topics", "list", expect=2, PIPELINE_CLIENT="confluent", PIPELINE_SASL_PASSWORD="nope"
    )
    assert "refused the credentials of user 'app'" in wrong and wrong.count("error:") == 1
