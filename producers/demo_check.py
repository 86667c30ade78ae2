"""The demo's data: customers seeded where they belong, and the invariants checked at the end.

The checks compare three independent accounts of the same run: what the
load generator had acknowledged by the broker, what the topics hold, and
what PostgreSQL aggregated. They hold to the cent or the demo fails.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import asyncpg
from rich.console import Console
from rich.table import Table

from pipeline import Catalogue, EventProducer, PipelineSettings
from pipeline.local import ClusterProbe
from topics.models import CountryRevenue, Customer, EnrichedOrder


@dataclass
class Published:
    """What the broker acknowledged, per customer, in EUR."""

    orders: int = 0
    by_customer: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    orders_by_customer: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    by_window: dict[tuple[str, str, datetime], Decimal] = field(
        default_factory=lambda: defaultdict(Decimal)
    )
    """(customer, country, minute of order time) → EUR."""

    def add(self, customer_id: str, amount_eur: Decimal, country: str, placed_at: datetime) -> None:
        self.orders += 1
        self.by_customer[customer_id] += amount_eur
        self.orders_by_customer[customer_id] += 1
        minute = placed_at.astimezone(UTC).replace(second=0, microsecond=0)
        self.by_window[(customer_id, country, minute)] += amount_eur

    def known_windows(self, prefix: str) -> dict[tuple[str, datetime], Decimal]:
        """(country, minute) → EUR of the orders of known customers (the enriched ones)."""
        sums: dict[tuple[str, datetime], Decimal] = defaultdict(Decimal)
        for (customer, country, minute), eur in self.by_window.items():
            if customer.startswith(prefix + "cust-"):
                sums[(country, minute)] += eur
        return dict(sums)

    def known(self, prefix: str) -> dict[str, Decimal]:
        return {c: v for c, v in self.by_customer.items() if c.startswith(prefix + "cust-")}

    def unknown_orders(self, prefix: str) -> int:
        return sum(
            n for c, n in self.orders_by_customer.items() if not c.startswith(prefix + "cust-")
        )


async def seed_customers(
    settings: PipelineSettings,
    database_url: str,
    catalogue: Catalogue,
    customers: list[Customer],
    topic_share: float,
) -> int:
    """All customers into PostgreSQL; `topic_share` of them onto the topic. The count on it."""
    connection = await asyncpg.connect(database_url)
    try:
        columns = list(zip(*(c.model_dump().values() for c in customers), strict=True))
        await connection.execute(
            "INSERT INTO customers "
            "(customer_id, name, email, country, segment, signed_up_at, updated_at) "
            "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], "
            "$6::timestamptz[], $7::timestamptz[]) "
            "ON CONFLICT (customer_id) DO UPDATE SET name = excluded.name, "
            "email = excluded.email, country = excluded.country, segment = excluded.segment, "
            "updated_at = excluded.updated_at",
            *(list(column) for column in columns),
        )
    finally:
        await connection.close()
    every = max(1, round(1 / (1 - topic_share))) if topic_share < 1 else 0
    on_topic = [c for i, c in enumerate(customers) if not every or i % every != every - 1]
    async with EventProducer(settings) as producer:
        for start in range(0, len(on_topic), 5000):
            await producer.publish_many(catalogue.get("customers"), on_topic[start : start + 5000])
    return len(on_topic)


@dataclass(frozen=True)
class Check:
    what: str
    expected: str
    actual: str
    ok: bool


async def check_invariants(
    cluster: ClusterProbe,
    database_url: str,
    catalogue: Catalogue,
    published: Published,
    prefix: str,
    started_at: datetime,
) -> list[Check]:
    enriched_spec = catalogue.get("orders.enriched")
    enriched_orders: set[str] = set()
    for event in await cluster.read_events(enriched_spec):
        assert isinstance(event, EnrichedOrder)
        enriched_orders.add(event.order_id)
    dead = sum((await cluster.end_offsets(catalogue.get("orders").dlq_name)).values())
    known = published.known(prefix)
    expected_eur = sum(known.values(), Decimal(0))
    pattern = prefix.replace("_", r"\_").replace("%", r"\%") + "cust-%"

    connection = await asyncpg.connect(database_url)
    try:
        facts = await connection.fetchval(
            "SELECT count(*) FROM order_facts WHERE customer_id LIKE $1", pattern
        )
        totals = {
            row["customer_id"]: row["revenue_eur"]
            for row in await connection.fetch(
                "SELECT customer_id, revenue_eur FROM customer_totals WHERE customer_id LIKE $1",
                pattern,
            )
        }
        by_minute = await connection.fetchval(
            "SELECT coalesce(sum(revenue_eur), 0) FROM revenue_by_minute WHERE minute >= $1",
            started_at.replace(second=0, microsecond=0),
        )
    finally:
        await connection.close()
    mismatched = sum(1 for c, v in known.items() if totals.get(c) != v) + sum(
        1 for c in totals if c not in known
    )
    windows = await windowed_revenue(cluster, catalogue)
    expected_windows = published.known_windows(prefix)
    windows_total = sum(windows.values(), Decimal(0))
    windows_off = sum(
        1
        for w in expected_windows.keys() | windows.keys()
        if windows.get(w) != expected_windows.get(w)
    )
    db_total = sum(totals.values(), Decimal(0))
    return [
        Check(
            "orders published = enriched + dead-lettered",
            f"{published.orders:,}",
            f"{len(enriched_orders):,} + {dead:,}",
            published.orders == len(enriched_orders) + dead,
        ),
        Check(
            "dead-lettered = orders for unknown customers",
            f"{published.unknown_orders(prefix):,}",
            f"{dead:,}",
            dead == published.unknown_orders(prefix),
        ),
        Check(
            "order_facts rows = orders enriched",
            f"{len(enriched_orders):,}",
            f"{facts:,}",
            facts == len(enriched_orders),
        ),
        Check(
            "Σ customer_totals = Σ published orders (EUR)",
            f"{expected_eur:,.2f}",
            f"{db_total:,.2f}",
            db_total == expected_eur,
        ),
        Check(
            "customers whose total differs",
            "0",
            f"{mismatched:,} of {len(known):,}",
            mismatched == 0,
        ),
        Check(
            "Σ revenue_by_minute since start = Σ published orders (EUR)",
            f"{expected_eur:,.2f}",
            f"{by_minute:,.2f}",
            by_minute == expected_eur,
        ),
        Check(
            "Σ windowed revenue (revenue.per_minute) = Σ published orders (EUR)",
            f"{expected_eur:,.2f}",
            f"{windows_total:,.2f}",
            windows_total == expected_eur,
        ),
        Check(
            "country-minute windows whose revenue differs",
            "0",
            f"{windows_off:,} of {len(expected_windows):,}",
            windows_off == 0,
        ),
    ]


async def windowed_revenue(
    cluster: ClusterProbe, catalogue: Catalogue
) -> dict[tuple[str, datetime], Decimal]:
    """(country, minute) → the sum over partitions of each one's latest window update."""
    latest: dict[tuple[str, datetime, int], Decimal] = {}
    for event in await cluster.read_events(catalogue.get("revenue.per_minute")):
        assert isinstance(event, CountryRevenue)
        # One country's updates share an output partition: read in order, the last is newest.
        latest[(event.country, event.minute, event.source_partition)] = event.revenue_eur
    sums: dict[tuple[str, datetime], Decimal] = defaultdict(Decimal)
    for (country, minute, _), eur in latest.items():
        sums[(country, minute.astimezone(UTC))] += eur
    return dict(sums)


def print_checks(console: Console, checks: list[Check]) -> bool:
    table = Table(title="invariants")
    for column in ("check", "expected", "actual", ""):
        table.add_column(column)
    for check in checks:
        table.add_row(
            check.what,
            check.expected,
            check.actual,
            "[green]ok[/]" if check.ok else "[bold red]FAILED[/]",
        )
    console.print(table)
    ok = all(check.ok for check in checks)
    console.print("[green]all invariants hold[/]" if ok else "[bold red]invariants violated[/]")
    return ok
