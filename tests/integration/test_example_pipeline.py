"""The example pipeline with real workers: tables, caches, PostgreSQL, and the demo itself."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

from pipeline.kafka.aiokafka.probe import run_sync
from pipeline.kafka.connect import connect
from pipeline.ops.topics import ensure_topics
from pipeline.paths import project_dir
from pipeline.publishing.producer import EventProducer
from pipeline.reading.offsets import end_offsets
from pipeline.settings import PipelineSettings
from pipeline.wire.codec import decode_value
from tests.replicas import Replica, poll_until
from tests.support import read_all
from topics import CATALOGUE
from topics.models import Customer, EnrichedOrder, Order

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


class Pipeline:
    def __init__(self, settings: PipelineSettings, prefix: str, postgres_url: str, tmp: Path):
        self.settings = settings
        self.prefix = prefix
        self.catalogue = CATALOGUE.with_prefix(prefix)
        self.postgres_url = postgres_url
        self.log_dir = tmp / "logs"
        self.state_dir = tmp / "state"
        self.env = {
            "PIPELINE_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "PIPELINE_TOPIC_PREFIX": prefix,
            "PIPELINE_DATABASE_URL": postgres_url,
            "PIPELINE_STATE_DIR": str(self.state_dir),
        }
        self.replicas: list[Replica] = []

    def start(
        self, replica_id: str = "r0", processor: str = "enrich_orders", **env: str
    ) -> Replica:
        replica = Replica(processor, replica_id, {**self.env, **env}, self.log_dir)
        self.replicas.append(replica)
        return replica

    def cache_dir(self, replica_id: str = "r0") -> Path:
        return self.state_dir / "caches" / f"{self.prefix}enrich_orders" / replica_id / "customers"

    def customer(self, index: int, version: str = "v1") -> Customer:
        return Customer(
            customer_id=f"{self.prefix}cust-{index:07d}",
            name=f"Customer {index} {version}",
            country="DE",
            signed_up_at=NOW,
            updated_at=NOW,
        )

    def order(self, customer_id: str, number: int) -> Order:
        return Order(
            order_id=f"{self.prefix}ord-{number}",
            customer_id=customer_id,
            amount=Decimal("10.00"),
            currency="EUR",
            country="DE",
            placed_at=NOW,
        )

    def publish(self, topic: str, events: list[Customer] | list[Order]) -> None:
        async def run() -> None:
            async with EventProducer(self.settings) as producer:
                for start in range(0, len(events), 5000):
                    await producer.publish_many(
                        self.catalogue.get(topic), events[start : start + 5000]
                    )

        run_sync(run())

    def insert_into_postgres(self, customers: list[Customer]) -> None:
        async def run() -> None:
            connection = await asyncpg.connect(self.postgres_url)
            try:
                await connection.executemany(
                    "INSERT INTO customers (customer_id, name, email, country, segment, "
                    "signed_up_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    [tuple(c.model_dump().values()) for c in customers],
                )
            finally:
                await connection.close()

        run_sync(run())

    def count(self, topic: str) -> int:
        return sum(run_sync(end_offsets(connect(self.settings), topic)).values())

    def wait_handled(self, expected: int) -> None:
        enriched = self.catalogue.get("orders.enriched").name
        dlq = self.catalogue.get("orders").dlq_name
        poll_until(
            lambda: self.count(enriched) + self.count(dlq) >= expected,
            120,
            what=f"{expected} orders enriched or dead-lettered",
        )

    def enriched(self) -> dict[str, EnrichedOrder]:
        spec = self.catalogue.get("orders.enriched")
        found: dict[str, EnrichedOrder] = {}
        for record in run_sync(read_all(connect(self.settings), spec.name)):
            event = decode_value(spec, record.value)
            assert isinstance(event, EnrichedOrder)
            found[event.order_id] = event
        return found


@pytest.fixture
def pipeline(
    settings: PipelineSettings, unique: str, postgres_url: str, tmp_path: Path
) -> Iterator[Pipeline]:
    catalogue = CATALOGUE.with_prefix(unique)
    run_sync(ensure_topics(connect(settings), catalogue.with_dlqs()))
    pipeline = Pipeline(settings, unique, postgres_url, tmp_path)
    try:
        yield pipeline
    finally:
        for replica in pipeline.replicas:
            if replica.running:
                replica.signal(signal.SIGKILL)
                replica.wait()


@pytest.mark.both_clients
@pytest.mark.long
def test_table_catches_up_before_readiness_and_misses_load_from_postgres(
    pipeline: Pipeline,
) -> None:
    on_topic = [pipeline.customer(i) for i in range(3000)]
    only_in_db = [pipeline.customer(i) for i in range(3000, 3200)]
    pipeline.publish("customers", on_topic)
    pipeline.insert_into_postgres(only_in_db)
    replica = pipeline.start()
    replica.wait_ready()
    # Ready means caught up: the whole topic was in the cache before any order.
    assert replica.metric("pipeline_table_records_total") >= 3000
    assert replica.metric("pipeline_processed_total") == 0

    orders = [pipeline.order(c.customer_id, i) for i, c in enumerate(on_topic + only_in_db)]
    orders += [pipeline.order(f"{pipeline.prefix}nobody-{i}", 10_000 + i) for i in range(10)]
    pipeline.publish("orders", orders)
    pipeline.wait_handled(len(orders))

    enriched = pipeline.enriched()
    assert len(enriched) == 3200
    names = {c.customer_id: c.name for c in on_topic + only_in_db}
    assert all(e.customer_name == names[e.customer_id] for e in enriched.values())
    assert pipeline.count(pipeline.catalogue.get("orders").dlq_name) == 10
    # Loads went to PostgreSQL only for what the topic lacked (the 200, and the 10 unknown).
    assert replica.metric("pipeline_cache_loads_total") == 210
    assert replica.metric("pipeline_cache_hits_total") >= 3000


def test_a_deleted_or_corrupted_cache_is_rebuilt_on_restart(pipeline: Pipeline) -> None:
    customers = [pipeline.customer(i) for i in range(500)]
    pipeline.publish("customers", customers)
    replica = pipeline.start()
    replica.wait_ready()
    assert replica.stop() == 0
    assert (pipeline.cache_dir() / "CURRENT").exists()

    shutil.rmtree(pipeline.cache_dir())
    replica = pipeline.start()
    replica.wait_ready()
    assert replica.metric("pipeline_table_records_total") >= 500
    pipeline.publish("orders", [pipeline.order(c.customer_id, i) for i, c in enumerate(customers)])
    pipeline.wait_handled(500)
    assert replica.stop() == 0

    (pipeline.cache_dir() / "CURRENT").write_bytes(b"MANIFEST-999999\n")
    for manifest in pipeline.cache_dir().glob("MANIFEST-*"):
        manifest.write_bytes(b"\x00garbage" * 16)
    replica = pipeline.start()
    replica.wait_ready()
    assert "wiping it and starting empty" in replica.tail(200)
    assert replica.metric("pipeline_cache_rebuilds_total") == 1
    more = [pipeline.order(c.customer_id, 1000 + i) for i, c in enumerate(customers[:100])]
    pipeline.publish("orders", more)
    pipeline.wait_handled(600)
    assert len(pipeline.enriched()) == 600
    assert pipeline.count(pipeline.catalogue.get("orders").dlq_name) == 0


def test_sigkill_during_a_cache_write_burst_restarts_cleanly(pipeline: Pipeline) -> None:
    pipeline.publish("customers", [pipeline.customer(i) for i in range(1000)])
    replica = pipeline.start()
    replica.wait_ready()
    updates = [pipeline.customer(i % 1000, f"v{2 + i // 1000}") for i in range(60_000)]
    publisher = threading.Thread(target=pipeline.publish, args=("customers", updates))
    publisher.start()
    poll_until(
        lambda: replica.metric("pipeline_table_records_total") > 5000, 60, what="a write burst"
    )
    replica.signal(signal.SIGKILL)
    assert replica.wait() == -signal.SIGKILL
    publisher.join()

    restarted = pipeline.start()
    restarted.wait_ready()
    # The last update of each customer wins, whatever state the kill left the cache in.
    pipeline.publish(
        "orders", [pipeline.order(f"{pipeline.prefix}cust-{i:07d}", i) for i in range(1000)]
    )
    pipeline.wait_handled(1000)
    enriched = pipeline.enriched()
    assert {e.customer_name.rsplit(" ", 1)[1] for e in enriched.values()} == {"v61"}  # type: ignore[union-attr]
    assert "Traceback" not in restarted.tail(200)


def test_a_locked_database_exhausts_the_pool_and_is_retried_not_dead_lettered(
    pipeline: Pipeline,
) -> None:
    enriched = [
        EnrichedOrder(
            order_id=f"{pipeline.prefix}ord-{i}",
            customer_id=f"{pipeline.prefix}cust-{i % 40:07d}",
            amount=Decimal("2.50"),
            currency="EUR",
            country="DE",
            placed_at=NOW,
            enriched_at=NOW,
            amount_eur=Decimal("2.50"),
        )
        for i in range(2000)
    ]
    replica = pipeline.start(
        processor="order_stats",
        PIPELINE_DB__POOL_MAX_SIZE="1",
        PIPELINE_DB__ACQUIRE_TIMEOUT_S="0.3",
    )
    replica.wait_ready()

    async def hold_lock(release: threading.Event) -> None:
        connection = await asyncpg.connect(pipeline.postgres_url)
        try:
            async with connection.transaction():
                await connection.execute("LOCK TABLE order_facts IN ACCESS EXCLUSIVE MODE")
                locked.set()
                await asyncio.to_thread(release.wait)
        finally:
            await connection.close()

    locked, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=run_sync, args=(hold_lock(release),))
    holder.start()
    try:
        assert locked.wait(10)
        pipeline.publish("orders.enriched", enriched)
        # One writer holds the only connection, blocked on the lock; the others time out.
        poll_until(
            lambda: replica.metric("pipeline_db_pool_exhausted_total") > 0,
            60,
            what="an acquire timeout",
        )
        assert replica.running
    finally:
        release.set()
        holder.join()
    poll_until(
        lambda: replica.metric("pipeline_sink_items_total") >= 2000, 60, what="the sink to catch up"
    )
    assert replica.metric("pipeline_dependency_failures_total") > 0
    assert replica.metric("pipeline_dead_lettered_total") == 0

    async def totals() -> tuple[int, Decimal]:
        connection = await asyncpg.connect(pipeline.postgres_url)
        try:
            row = await connection.fetchrow(
                "SELECT sum(orders) AS n, sum(revenue_eur) AS eur FROM customer_totals "
                "WHERE customer_id LIKE $1",
                pipeline.prefix.replace("_", r"\_") + "cust-%",
            )
            assert row is not None
            return row["n"], row["eur"]
        finally:
            await connection.close()

    assert run_sync(totals()) == (2000, Decimal("5000.00"))


@pytest.mark.both_clients
@pytest.mark.long
def test_the_shortened_demo_passes_its_invariant_check(kafka_bootstrap: str, unique: str) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP": kafka_bootstrap, "COLUMNS": "120"}
    env.pop("POSTGRES_URL", None)  # the demo's own PostgreSQL: its per-minute sums stay its own
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "producers.demo",
            "--duration",
            "12",
            "--rate",
            "300",
            "--customers",
            "3000",
            "--prefix",
            unique,
        ],
        cwd=project_dir(),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    console_answered = False
    assert demo.stdout is not None
    for line in demo.stdout:
        lines.append(line)
        found = re.search(r"console: (http://127\.0\.0\.1:\d+/)", line)
        if found:
            # While the demo runs, the address it printed answers.
            overview = found.group(1) + "api/overview"
            poll_until(lambda: _answers(overview), 30, what="the console")  # noqa: B023
            console_answered = True
    code = demo.wait(timeout=400)
    output = "".join(lines)
    assert code == 0, output[-4000:]
    assert console_answered, output[-4000:]
    assert "all invariants hold" in output
    assert "FAILED" not in output


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False
