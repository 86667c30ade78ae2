"""`pipeline lag`: a consumer group's lag, from the brokers."""

from __future__ import annotations

import asyncio
import json

import typer
from rich.live import Live
from rich.table import Table

from pipeline.cli.common import BootstrapOption, console, group_and_topic, settings_for_cli, stdout
from pipeline.kafka.connect import connect
from pipeline.metrics import Metrics
from pipeline.scaling.lag import GroupLag, LagMonitor, export_lag


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}/s"


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return "∞" if value == float("inf") else f"{value:,.1f}s"


def render(sample: GroupLag) -> Table:
    shared = sample.kind == "share"
    what = "share group" if shared else "group"
    table = Table(title=f"{what} {sample.group} on {sample.topic}")
    # A share group commits nothing: below its start offset every record has an outcome.
    committed = "start" if shared else "committed"
    for column in ("partition", "end", committed, "lag", "lag (s)", "oldest", "in", "out"):
        table.add_column(column, justify="right")
    for p in sample.partitions:
        table.add_row(
            str(p.partition),
            f"{p.end_offset:,}",
            "–" if p.committed is None else f"{p.committed:,}",
            f"{p.lag:,}",
            _seconds(p.lag_seconds),
            _seconds(p.oldest_age_s),
            _rate(p.produce_rate),
            _rate(p.consume_rate),
        )
    table.add_row(
        "total",
        "",
        "",
        f"{sample.lag:,}",
        _seconds(sample.lag_seconds),
        _seconds(sample.oldest_age_s),
        _rate(sample.produce_rate),
        _rate(sample.consume_rate),
        style="bold",
    )
    return table


def lag(
    group: str = typer.Option(None, "--group", "-g", help="Consumer group."),
    processor: str = typer.Option(None, "--processor", "-p", help="Use this processor's group."),
    topic: str = typer.Option(None, "--topic", help="Default: the group's only topic."),
    watch: bool = typer.Option(False, "--watch", help="Sample every --interval until Ctrl-C."),
    interval: float = typer.Option(2.0, "--interval", help="Seconds between samples."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per sample."),
    metrics_port: int = typer.Option(
        None, "--metrics-port", help="With --watch: serve the figures on /metrics."
    ),
    no_age: bool = typer.Option(False, "--no-age", help="Skip reading the oldest records."),
    bootstrap: str = BootstrapOption,
) -> None:
    """Per partition: end and committed offsets, lag in records and seconds, rates, oldest age.

    Read from the brokers, so it is right for paused partitions and for groups
    with no member running. Rates need two samples: a single run takes two,
    --interval apart. A queue-mode processor's share group shows its start
    offset and, as lag, the records without an outcome yet (in flight ones
    included), as Kafka 4.2+ counts them.

    Example: pipeline lag --processor enrich_orders --watch
    """
    settings = settings_for_cli(bootstrap)
    group_id, topic_name = group_and_topic(settings, processor, group, topic)

    def show(sample: GroupLag) -> None:
        if as_json:
            typer.echo(json.dumps(sample.to_json()))
        else:
            stdout.print(render(sample))

    async def run() -> None:
        clients = connect(settings)
        async with LagMonitor(clients, group_id, topic_name, measure_age=not no_age) as monitor:
            server = None
            if metrics_port is not None:
                from pipeline.runtime.health import HealthServer

                observed = _Exported(Metrics())
                export_lag(observed.metrics, monitor)
                server = HealthServer(observed, metrics_port)
                await server.start()
            try:
                await monitor.sample()
                await asyncio.sleep(interval)
                first = await monitor.sample()
                if watch and not as_json:
                    # One table, redrawn in place: a scrolling log of tables is unreadable.
                    with Live(render(first), console=stdout, auto_refresh=False) as live:
                        while True:
                            await asyncio.sleep(interval)
                            live.update(render(await monitor.sample()), refresh=True)
                show(first)
                while watch:
                    await asyncio.sleep(interval)
                    show(await monitor.sample())
            finally:
                if server is not None:
                    await server.stop()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        console.print("stopped")


class _Exported:
    ready = True

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def live(self) -> tuple[bool, str]:
        return True, "ok"
