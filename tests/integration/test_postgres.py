"""The PostgreSQL side against a real server: migrations, pool bounds, idempotent sink, indexes."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

from consumers.order_stats import OrderFact, write_facts
from pipeline.settings import DatabaseTuning
from pipeline.stores.db import Database, PoolExhaustedError
from pipeline.stores.migrations import migrate
from pipeline.stores.services import Services
from tests.support import run_cli


@pytest.fixture
async def database(postgres_url: str) -> AsyncIterator[Database]:
    async with Database(postgres_url, DatabaseTuning(pool_max_size=4)) as db:
        yield db


def facts(
    count: int, customers: int = 7, countries: tuple[str, ...] = ("DE", "US")
) -> list[OrderFact]:
    minute = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    run = uuid.uuid4().hex[:8]
    return [
        OrderFact(
            event_id=str(uuid.uuid4()),
            order_id=f"ord-{run}-{i}",
            customer_id=f"cust-{run}-{i % customers}",
            country=countries[i % len(countries)],
            minute=minute + timedelta(minutes=i % 3),
            amount_eur=Decimal(f"{i % 50}.{i % 100:02d}"),
        )
        for i in range(count)
    ]


async def snapshot(db: Database, customer_prefix: str) -> tuple[list[tuple], list[tuple], int]:
    totals = await db.fetch(
        "SELECT customer_id, orders, revenue_eur FROM customer_totals "
        "WHERE customer_id LIKE $1 ORDER BY customer_id",
        customer_prefix + "%",
    )
    facts_count = await db.fetchrow(
        "SELECT count(*) AS n FROM order_facts WHERE customer_id LIKE $1", customer_prefix + "%"
    )
    minutes = await db.fetch(
        "SELECT minute, country, orders, revenue_eur FROM revenue_by_minute "
        "WHERE minute >= '2026-01-01 12:00Z' AND minute < '2026-01-01 12:03Z' "
        "ORDER BY minute, country"
    )
    assert facts_count is not None
    return [tuple(r) for r in totals], [tuple(r) for r in minutes], facts_count["n"]


async def test_migrations_apply_once_and_report_edits(postgres_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    run = uuid.uuid4().hex[:8]
    table = f"probe_{run}"
    # Versions unique to this run: the database outlives it (make test reuses it).
    probe, broken = f"001_probe_{run}", f"002_broken_{run}"
    (folder / f"{probe}.sql").write_text(f"CREATE TABLE {table} (id int PRIMARY KEY);")
    first = await migrate(postgres_url, folder)
    again = await migrate(postgres_url, folder)
    assert first.applied == [probe]
    assert again.applied == [] and again.already == [probe]
    (folder / f"{probe}.sql").write_text(f"CREATE TABLE {table} (id bigint PRIMARY KEY);")
    (folder / f"{broken}.sql").write_text(f"INSERT INTO {table} VALUES (1); SELECT nonsense;")
    with pytest.raises(Exception, match=rf"{broken}\.sql failed and was rolled back"):
        await migrate(postgres_url, folder)
    connection = await asyncpg.connect(postgres_url)
    try:
        # The failed migration left nothing behind, and is not recorded.
        assert await connection.fetchval(f"SELECT count(*) FROM {table}") == 0
        versions = await connection.fetch("SELECT version FROM schema_migrations")
        assert broken not in {row["version"] for row in versions}
    finally:
        await connection.close()
    (folder / f"{broken}.sql").unlink()
    report = await migrate(postgres_url, folder)
    assert report.edited_after_applying == [probe]


async def test_a_batch_delivered_twice_leaves_identical_rows(database: Database) -> None:
    batch = facts(300)
    prefix = batch[0].customer_id.rsplit("-", 1)[0]
    services = Services("test", database=database)
    await write_facts(batch, services)
    first = await snapshot(database, prefix)
    await write_facts(batch, services)  # redelivery of the whole batch
    await write_facts(batch[100:200] + batch[:10], services)  # and of a part, mixed
    assert await snapshot(database, prefix) == first
    totals, _, facts_count = first
    assert facts_count == 300
    assert sum(row[1] for row in totals) == 300
    assert sum(row[2] for row in totals) == sum(fact.amount_eur for fact in batch)


async def test_concurrent_batches_touching_the_same_aggregates_add_up(database: Database) -> None:
    batches = [facts(200) for _ in range(8)]
    services = Services("test", database=database)
    before = await database.fetchrow(
        "SELECT coalesce(sum(orders), 0) AS n, coalesce(sum(revenue_eur), 0) AS eur "
        "FROM revenue_by_minute "
        "WHERE minute >= '2026-01-01 12:00Z' AND minute < '2026-01-01 12:03Z'"
    )
    await asyncio.gather(*(write_facts(batch, services) for batch in batches))
    after = await database.fetchrow(
        "SELECT sum(orders) AS n, sum(revenue_eur) AS eur FROM revenue_by_minute "
        "WHERE minute >= '2026-01-01 12:00Z' AND minute < '2026-01-01 12:03Z'"
    )
    assert before is not None and after is not None
    assert after["n"] - before["n"] == 1600
    assert after["eur"] - before["eur"] == sum(f.amount_eur for b in batches for f in b)


async def test_pool_exhaustion_fails_within_the_acquire_timeout(postgres_url: str) -> None:
    tuning = DatabaseTuning(pool_min_size=1, pool_max_size=1, acquire_timeout_s=0.5)
    async with Database(postgres_url, tuning) as db:
        async with db.connection():
            started = time.monotonic()
            with pytest.raises(PoolExhaustedError, match=r"within 0\.5s"):
                async with db.connection():
                    pass
            waited = time.monotonic() - started
        assert 0.4 <= waited < 3.0
        # Released: the next caller gets the connection.
        assert await db.fetchrow("SELECT 1 AS one") is not None


async def test_the_report_queries_use_their_indexes(database: Database) -> None:
    from consumers.order_stats import REPORT_QUERIES

    async with database.connection() as connection:
        # Enough rows that a sequential scan is not the cheaper plan.
        await connection.execute(
            "INSERT INTO customers (customer_id, name, country, segment, signed_up_at, updated_at) "
            "SELECT 'bulk-' || g, 'n', 'DE', 'consumer', now(), now() "
            "FROM generate_series(1, 50000) g ON CONFLICT DO NOTHING"
        )
        await connection.execute(
            "INSERT INTO customer_totals (customer_id, orders, revenue_eur, last_order_at) "
            "SELECT 'bulk-' || g, 1, g % 9973, now() FROM generate_series(1, 50000) g "
            "ON CONFLICT DO NOTHING"
        )
        await connection.execute(
            "INSERT INTO order_facts "
            "(event_id, order_id, customer_id, country, minute, amount_eur) "
            "SELECT gen_random_uuid(), 'bulk-' || g, 'bulk-' || (g % 5000), 'DE', "
            "'2025-01-01'::timestamptz + g * interval '1 minute', 1 "
            "FROM generate_series(1, 50000) g"
        )
        await connection.execute(
            "INSERT INTO revenue_by_minute (minute, country, orders, revenue_eur) "
            "SELECT '2025-01-01'::timestamptz + g * interval '1 minute', c, 1, 1 "
            "FROM generate_series(1, 10000) g, unnest(ARRAY['DE','FR','US','GB','JP']) c "
            "ON CONFLICT DO NOTHING"
        )
        await connection.execute(
            "ANALYZE customers, customer_totals, order_facts, revenue_by_minute"
        )
        for name, (query, args, index) in REPORT_QUERIES.items():
            plan = "\n".join(row[0] for row in await connection.fetch(f"EXPLAIN {query}", *args))
            uses = re.search(
                rf"(Index Scan|Index Only Scan) using {index}|Bitmap Index Scan on {index}", plan
            )
            assert uses, f"{name} does not use {index}:\n{plan}"


def test_db_cli_migrates_the_configured_database(postgres_url: str) -> None:
    result = run_cli("db", "migrate", "--dry-run", env={"PIPELINE_DATABASE_URL": postgres_url})
    assert result.returncode == 0, result.stderr
    assert "0 would apply" in result.stderr
