"""`make demo`: the pipeline as far as it exists, end to end on a local broker.

Starts a private Kafka (or uses KAFKA_BOOTSTRAP), applies the catalogue,
publishes customers and a stream of Zipf-skewed orders with a progress bar,
prints where the events landed per partition, and stops what it started,
also on Ctrl-C. Later issues grow this into the whole pipeline.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from pipeline.delivery import Delivery, DeliveryList
from pipeline.localkafka import ephemeral_kafka
from pipeline.offsets import end_offsets
from pipeline.producer import EventProducer
from pipeline.settings import PipelineSettings
from pipeline.topic_admin import ensure_topics
from producers.loadgen import CustomerGenerator, OrderGenerator
from topics import CATALOGUE, CUSTOMERS, ORDERS

console = Console()


async def demo(bootstrap: str, orders_total: int, customers_total: int) -> None:
    settings = PipelineSettings(bootstrap_servers=bootstrap)
    plan = await ensure_topics(settings, CATALOGUE.with_dlqs())
    console.print(
        f"[green]topics applied[/]: {len(plan.pending)} created or changed, "
        f"{len(plan.warnings)} warning(s) (a 1-broker cluster clamps replication to 1)"
    )
    deliveries: list[Delivery] = []
    async with EventProducer(settings) as producer:
        customers = list(CustomerGenerator(customers_total))
        await producer.publish_many(CUSTOMERS, customers)
        console.print(f"[green]published {len(customers):,} customers[/] to {CUSTOMERS.name}")

        generator = OrderGenerator(customers_total)
        started = time.monotonic()
        with Progress(
            TextColumn("[bold]orders[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>9,.0f} ev/s"),
            TimeRemainingColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("orders", total=orders_total, rate=0.0)
            pending: list[asyncio.Future[DeliveryList]] = []
            for start in range(0, orders_total, 2000):
                batch = generator.batch(min(2000, orders_total - start))
                pending.append(await producer.submit_many(ORDERS, batch))
                while len(pending) > 4:
                    deliveries.extend(await pending.pop(0))
                    rate = len(deliveries) / (time.monotonic() - started)
                    progress.update(task, completed=len(deliveries), rate=rate)
            for future in pending:
                deliveries.extend(await future)
            elapsed = time.monotonic() - started
            progress.update(task, completed=len(deliveries), rate=len(deliveries) / elapsed)

    per_partition = Counter(d.partition for d in deliveries)
    offsets = await end_offsets(settings, ORDERS.name)
    table = Table(
        title=f"{ORDERS.name}: where {len(deliveries):,} orders landed (key: customer_id)"
    )
    for column in ("partition", "published now", "share", "end offset"):
        table.add_column(column, justify="right")
    for partition in sorted(offsets):
        count = per_partition.get(partition, 0)
        table.add_row(
            str(partition),
            f"{count:,}",
            f"{count / len(deliveries):.1%}",
            f"{offsets[partition]:,}",
        )
    console.print(table)
    console.print(
        f"{len(deliveries):,} orders acknowledged by the broker in {elapsed:.1f}s "
        f"({len(deliveries) / elapsed:,.0f} events/s); partitions are uneven because a few "
        "customers place most orders (Zipf), and all of one customer's orders share a partition."
    )
    console.print(
        "next: `pipeline infra up`, then `pipeline topics apply` and "
        "`pipeline produce --topic orders --file your.jsonl` on a cluster that stays up."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--customers", type=int, default=20_000)
    args = parser.parse_args()
    try:
        with ephemeral_kafka(progress=lambda m: console.print(f"[dim]… {m}[/]")) as bootstrap:
            console.print(f"[green]Kafka at {bootstrap}[/]")
            asyncio.run(demo(bootstrap, args.orders, args.customers))
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: the demo's broker has been stopped[/]")
        sys.exit(130)
    console.print("[green]demo finished; its broker has been stopped[/]")


if __name__ == "__main__":
    main()
