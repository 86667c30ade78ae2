"""How fast does order_stats' sink write, and what do batching and the pool size buy?

Writes the same facts (one row per enriched order, feeding per-customer and
per-minute aggregates) into a real PostgreSQL in several ways, from 16
concurrent writers as 16 partitions would:
- row_by_row: the same idempotent upsert, one statement per row (the
  baseline every hand-written consumer starts with), pool of 4;
- batched_pool_N: consumers/order_stats.write_facts, 500 rows a statement,
  with a pool of 1, 4 and 16 connections.
Tables are emptied between variants. Prints rows/s and p50/p99 per
statement, and last one JSON line of rows/s per variant.

Run: .venv/bin/python bench/sink.py [--rows 40000]
(starts a private PostgreSQL unless POSTGRES_URL is set; needs no broker)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.peers.environment import versions_of_every_contestant
from consumers.order_stats import OrderFact, write_facts
from pipeline.dev.localpg import ephemeral_postgres
from pipeline.settings import DatabaseTuning
from pipeline.stores.db import Database
from pipeline.stores.migrations import migrate
from pipeline.stores.services import Services

WRITERS = 16
BATCH = 500
COUNTRIES = ["DE", "FR", "NL", "ES", "IT", "US", "GB", "CH", "SE", "PL", "JP"]


def make_facts(count: int, customers: int = 20_000) -> list[OrderFact]:
    rng = random.Random(7)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        OrderFact(
            event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            order_id=f"ord-{i}",
            customer_id=f"cust-{int(rng.paretovariate(1.1)) % customers:07d}",
            country=rng.choice(COUNTRIES),
            minute=start + timedelta(minutes=rng.randrange(60)),
            amount_eur=Decimal(rng.randrange(100, 100_000)) / 100,
        )
        for i in range(count)
    ]


async def run_writers(
    parts: list[list[OrderFact]],
    write: Callable[[Sequence[OrderFact]], Awaitable[None]],
    chunk: int,
) -> tuple[float, list[float]]:
    """Each writer writes its part in chunks, in order; wall time and per-statement latencies."""
    latencies: list[float] = []

    async def writer(part: list[OrderFact]) -> None:
        for start in range(0, len(part), chunk):
            began = time.perf_counter()
            await write(part[start : start + chunk])
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(writer(part) for part in parts))
    return time.perf_counter() - began, latencies


async def variant(
    url: str, facts: list[OrderFact], pool_size: int, chunk: int
) -> tuple[float, float, float]:
    tuning = DatabaseTuning(pool_min_size=pool_size, pool_max_size=pool_size, acquire_timeout_s=60)
    async with Database(url, tuning) as db:
        await db.execute("TRUNCATE order_facts, customer_totals, revenue_by_minute")
        services = Services("bench", database=db)
        parts = [facts[i::WRITERS] for i in range(WRITERS)]

        async def write(batch: Sequence[OrderFact]) -> None:
            await write_facts(batch, services)

        seconds, latencies = await run_writers(parts, write, chunk)
        written = await db.fetchrow("SELECT count(*) AS n FROM order_facts")
        assert written is not None and written["n"] == len(facts), "rows went missing"
    ordered = sorted(latencies)
    return (
        len(facts) / seconds,
        statistics.median(ordered) * 1000,
        ordered[int(len(ordered) * 0.99)] * 1000,
    )


async def bench(url: str, rows: int) -> dict[str, float]:
    await migrate(url, DatabaseTuning().migrations_dir)
    facts = make_facts(rows)
    figures: dict[str, float] = {}
    plans = [("row_by_row", 4, 1, facts[: max(2000, rows // 10)])]
    plans += [(f"batched_pool_{size}", size, BATCH, facts) for size in (1, 4, 16)]
    for name, pool, chunk, data in plans:
        rate, p50, p99 = await variant(url, data, pool, chunk)
        figures[name] = round(rate)
        print(
            f"{name:>16}: {rate:>9,.0f} rows/s  ({len(data):,} rows, {chunk} per statement, "
            f"pool {pool}; p50 {p50:.1f} ms, p99 {p99:.1f} ms per statement)",
            file=sys.stderr,
        )
    figures["batched_vs_row_by_row"] = round(figures["batched_pool_4"] / figures["row_by_row"], 1)
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=40_000)
    args = parser.parse_args()
    with ephemeral_postgres(progress=lambda m: print(f"[postgres] {m}", file=sys.stderr)) as url:
        figures = asyncio.run(bench(url, args.rows))
    print(json.dumps({**figures, "clients": versions_of_every_contestant()}))


if __name__ == "__main__":
    main()
