"""`make demo`: the whole example pipeline on this machine, in about two minutes.

Starts a private Kafka and PostgreSQL (or uses KAFKA_BOOTSTRAP and
POSTGRES_URL), applies the topic catalogue and the migrations, seeds the
customers (all in PostgreSQL, the system of record; most also on the
compacted `customers` topic), starts two replicas each of enrich_orders and
order_stats as real processes, runs the order load generator with a live
view, waits for the pipeline to drain, and checks the invariants: every
published order is enriched or dead-lettered, and PostgreSQL's totals equal
the sums over the published orders, and so does the windowed revenue per
country and minute (revenue_per_minute's own state). Everything it started is stopped on
exit, also on Ctrl-C.

Example: python -m producers.demo --duration 20 --rate 500
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.live import Live

from pipeline import Catalogue, EventProducer, PipelineSettings
from pipeline.local import (
    PIPELINE,
    ClusterProbe,
    WorkerProcess,
    apply_migrations,
    free_ports,
    local_kafka,
    local_postgres,
)
from producers.demo_check import Published, check_invariants, print_checks, seed_customers
from producers.demo_view import FlowProbe, Snapshot, one_line, rates, render
from producers.loadgen import CustomerGenerator, OrderGenerator, Profile, paced_chunks
from topics import CATALOGUE
from topics.fx import to_eur

console = Console()
PROCESSORS = ("enrich_orders", "order_stats", "revenue_per_minute")
VIEW_INTERVAL_S = 1.0
DRAIN_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class DemoOptions:
    duration_s: float = 60.0
    rate: float = 1500.0
    profile: Profile = "spike"
    customers: int = 20_000
    topic_share: float = 0.9
    """Customers also on the topic; the rest only PostgreSQL has (the loader's work)."""
    unknown_share: float = 0.002
    replicas: int = 2
    prefix: str = ""


@dataclass
class Run:
    options: DemoOptions
    settings: PipelineSettings
    database_url: str
    work_dir: Path
    catalogue: Catalogue
    workers: list[WorkerProcess] = field(default_factory=list)
    web_console: subprocess.Popen[bytes] | None = None
    published: Published = field(default_factory=Published)

    def topic(self, name: str) -> str:
        return self.catalogue.get(name).name


def worker_env(run: Run) -> dict[str, str]:
    return {
        "PIPELINE_BOOTSTRAP_SERVERS": run.settings.bootstrap_servers,
        "PIPELINE_DATABASE_URL": run.database_url,
        "PIPELINE_TOPIC_PREFIX": run.options.prefix,
        "PIPELINE_STATE_DIR": str(run.work_dir / "state"),
    }


def start_workers(run: Run) -> None:
    for processor in PROCESSORS:
        for index in range(run.options.replicas):
            replica_id = f"{processor}-{index}"
            run.workers.append(
                WorkerProcess(
                    processor, replica_id, worker_env(run), run.work_dir / f"{replica_id}.log"
                )
            )
    console.print(
        f"[green]started {len(run.workers)} worker processes[/] "
        f"({run.options.replicas} × {', '.join(PROCESSORS)}); logs in {run.work_dir}"
    )


def start_console(run: Run) -> None:
    """`pipeline console` on the demo's cluster, with every worker's metrics, while it runs."""
    port = free_ports(1)[0]
    metrics = [
        arg for w in run.workers for arg in ("--metrics", f"http://127.0.0.1:{w.port}/metrics")
    ]
    log = open(run.work_dir / "console.log", "wb")  # noqa: SIM115 - the process owns it
    run.web_console = subprocess.Popen(
        [PIPELINE, "console", "--port", str(port), "--interval", "2", *metrics],
        env={**os.environ, **worker_env(run)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    console.print(f"[bold]console: http://127.0.0.1:{port}/[/] (open it while the demo runs)")


def stop_console(run: Run) -> None:
    if run.web_console is not None and run.web_console.poll() is None:
        run.web_console.terminate()
        run.web_console.wait(timeout=30)


def stop_workers(run: Run) -> None:
    for worker in run.workers:
        worker.signal(15)
    for worker in run.workers:
        code = worker.stop(grace_s=40)
        if code != 0:
            console.print(f"[yellow]{worker.replica_id} exited with {code}[/]: {worker.tail(5)}")


async def publish_orders(run: Run, producer: EventProducer) -> None:
    options = run.options
    generator = OrderGenerator(
        options.customers, id_prefix=options.prefix, unknown_share=options.unknown_share
    )
    orders_topic = run.catalogue.get("orders")
    pending: list[asyncio.Future[object]] = []
    async for chunk in paced_chunks(options.rate, options.duration_s, options.profile):
        orders = generator.batch(chunk)
        pending.append(await producer.submit_many(orders_topic, orders))  # type: ignore[arg-type]
        for order in orders:
            run.published.add(
                order.customer_id,
                to_eur(order.amount, order.currency),
                order.country,
                order.placed_at,
            )
        while len(pending) > 8:
            await pending.pop(0)
    for future in pending:
        await future


async def watch(
    run: Run, probe: FlowProbe, phase: list[str], stop: asyncio.Event
) -> Snapshot | None:
    """Refresh the live view until `stop`; the last snapshot."""
    previous: Snapshot | None = None
    last_line = 0.0
    live = Live(console=console, refresh_per_second=4) if console.is_terminal else None
    with live or contextlib.nullcontext():
        while not stop.is_set():
            current = await probe.snapshot(run.workers)
            rate = rates(previous, current)
            if live is not None:
                live.update(render(current, rate, phase[0]))
            elif time.monotonic() - last_line >= 5:
                console.print(one_line(current, rate, phase[0]), highlight=False, markup=False)
                last_line = time.monotonic()
            previous = current
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), VIEW_INTERVAL_S)
    return previous


async def wait_drained(probe: FlowProbe, run: Run, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        snapshot = await probe.snapshot(run.workers)
        if all(sum(lag.values()) == 0 for lag in snapshot.lag.values()):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the pipeline did not drain within {timeout_s:.0f}s: "
                + ", ".join(f"{g} lag {sum(p.values())}" for g, p in snapshot.lag.items())
                + f"; see the worker logs in {run.work_dir}"
            )
        await asyncio.sleep(0.5)


async def demo(run: Run) -> bool:
    async with ClusterProbe(run.settings) as cluster:
        return await demo_on(run, cluster)


async def demo_on(run: Run, cluster: ClusterProbe) -> bool:
    options = run.options
    catalogue = run.catalogue
    await cluster.apply_topics(catalogue)
    await apply_migrations(run.database_url)
    console.print("[green]topics and migrations applied[/]")
    customers = list(CustomerGenerator(options.customers, id_prefix=options.prefix))
    on_topic = await seed_customers(
        run.settings, run.database_url, catalogue, customers, options.topic_share
    )
    console.print(
        f"[green]seeded {len(customers):,} customers[/] in PostgreSQL, "
        f"{on_topic:,} of them also on the customers topic"
    )
    start_workers(run)
    for worker in run.workers:
        worker.wait_ready(timeout_s=120)
    console.print("[green]all replicas ready[/] (tables caught up, pools connected)")
    start_console(run)

    started_at = datetime.now(UTC)
    probe = FlowProbe(
        cluster,
        stages={
            "orders": (f"{options.prefix}enrich_orders", run.topic("orders")),
            "enriched": (f"{options.prefix}order_stats", run.topic("orders.enriched")),
            "windows": (f"{options.prefix}revenue_per_minute", run.topic("orders.enriched")),
        },
        dlq_topics=[
            catalogue.get("orders").dlq_name,
            catalogue.get("orders.enriched").dlq_name,
        ],
    )
    phase = [f"publishing for {options.duration_s:.0f}s ({options.profile})"]
    stop_view = asyncio.Event()
    viewer = asyncio.ensure_future(watch(run, probe, phase, stop_view))
    try:
        async with EventProducer(run.settings) as producer:
            await publish_orders(run, producer)
        phase[0] = "draining"
        await wait_drained(probe, run, DRAIN_TIMEOUT_S)
    finally:
        stop_view.set()
        await viewer
    console.print(
        f"[green]published {run.published.orders:,} orders[/]; the pipeline drained. Checking…"
    )
    checks = await check_invariants(
        cluster, run.database_url, catalogue, run.published, options.prefix, started_at
    )
    return print_checks(console, checks)


@contextlib.contextmanager
def infrastructure() -> Iterator[tuple[str, str]]:
    say = lambda message: console.print(f"[dim]… {message}[/]")  # noqa: E731
    with local_kafka(progress=say) as bootstrap, local_postgres(progress=say) as url:
        console.print(f"[green]Kafka at {bootstrap}, PostgreSQL at {url}[/]")
        yield bootstrap, url


NEXT_STEPS = """[bold]What to try next[/]
  • pipeline infra up && pipeline db up && pipeline topics apply && pipeline db migrate
  • pipeline worker enrich_orders --replica-id a --health-port 9101   (and a second one: b, 9102)
  • python -m producers.loadgen --rate 2000 --duration 60 --profile spike
  • curl localhost:9101/metrics | grep cache    — hits, misses, loads from PostgreSQL
  • kill -9 one worker mid-stream: its partitions move, nothing is lost
  • python -m producers.demo --duration 20 --rate 500   — a shorter demo"""


def parse_options(argv: list[str] | None = None) -> DemoOptions:
    parser = argparse.ArgumentParser(
        description="Run the example pipeline end to end and check its invariants.",
        epilog="Example: python -m producers.demo --duration 20 --rate 500",
    )
    parser.add_argument("--duration", type=float, default=60, help="seconds of load (60)")
    parser.add_argument("--rate", type=float, default=1500, help="base orders per second")
    parser.add_argument("--profile", choices=["steady", "step", "spike"], default="spike")
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--replicas", type=int, default=2, help="replicas per processor")
    parser.add_argument(
        "--prefix", default="", help="topic, group and customer-id prefix (shared clusters)"
    )
    args = parser.parse_args(argv)
    return DemoOptions(
        duration_s=args.duration,
        rate=args.rate,
        profile=args.profile,
        customers=args.customers,
        replicas=args.replicas,
        prefix=args.prefix,
    )


def main(argv: list[str] | None = None) -> None:
    options = parse_options(argv)
    run: Run | None = None
    ok = False
    try:
        with (
            infrastructure() as (bootstrap, url),
            tempfile.TemporaryDirectory(prefix="pipeline-demo-") as folder,
        ):
            settings = PipelineSettings(bootstrap_servers=bootstrap, topic_prefix=options.prefix)
            run = Run(
                options,
                settings,
                url,
                Path(folder),
                CATALOGUE.with_prefix(options.prefix),
            )
            try:
                ok = asyncio.run(demo(run))
            finally:
                stop_console(run)
                stop_workers(run)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: workers, Kafka and PostgreSQL have been stopped[/]")
        sys.exit(130)
    console.print("[green]demo finished[/]; everything it started has been stopped")
    console.print(NEXT_STEPS)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
