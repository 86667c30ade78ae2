"""`pipeline console` (a web page) and `pipeline top` (the terminal): the cluster at a glance."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from pipeline.cli.common import (
    BootstrapOption,
    LogFormatOption,
    console,
    queue_groups,
    settings_for_cli,
    stdout,
)

if TYPE_CHECKING:  # imported when a command runs: every `pipeline` start imports this module
    from rich.console import Group

    from pipeline.console.watch import Snapshot


def console_command(
    port: int = typer.Option(8088, "--port", help="TCP port to serve the console on."),
    host: str = typer.Option("127.0.0.1", "--host", help="0.0.0.0 to listen on every address."),
    metrics: list[str] = typer.Option(
        [],
        "--metrics",
        help="A worker's /metrics URL (its --health-port), for held records and breakers; "
        "repeat per worker.",
    ),
    status_file: list[Path] = typer.Option(
        [],
        "--status-file",
        help="A supervisor's --status-file, for the autoscaler's decisions; repeat per file.",
    ),
    interval: float = typer.Option(5.0, "--interval", help="Seconds between samples."),
    bootstrap: str = BootstrapOption,
    log_format: str | None = LogFormatOption,
) -> None:
    """Serve a web console: groups and lag (live charts), dead letters, redrives, replays.

    Read-only without credentials; a redrive needs a key from
    PIPELINE_CONSOLE__API_KEYS (the gateway's format: `pipeline gateway
    --hash-key K` prints the sha256 to configure). Only groups with
    PIPELINE_TOPIC_PREFIX in their name are shown when it is set.

    Example: pipeline console --port 8088 --metrics http://127.0.0.1:8081/metrics

    Example: pipeline console --status-file scale-status.jsonl
    """
    import uvicorn

    from pipeline.catalogue import load_catalogue
    from pipeline.console.app import ConsoleConfig, create_console
    from pipeline.errors import PipelineError
    from pipeline.telemetry.client_logs import setup_process_logging

    setup_process_logging("INFO", who="console", log_format=log_format)
    settings = settings_for_cli(bootstrap)
    try:
        catalogue = load_catalogue(settings.catalogue_module, settings.topic_prefix)
    except PipelineError as exc:
        console.print(f"[yellow]no catalogue[/] ({exc}); showing groups and their topics only")
        catalogue = None
    config = ConsoleConfig(settings, catalogue, metrics, status_file, interval)
    config.share_groups = queue_groups(settings)
    app = create_console(config)
    console.print(f"console on http://{host}:{port}/ (Ctrl-C stops it)")
    uvicorn.run(app, host=host, port=port, log_level="warning")


def top(
    interval: float = typer.Option(2.0, "--interval", help="Seconds between samples."),
    once: bool = typer.Option(False, "--once", help="Print one sample and exit (for scripts)."),
    bootstrap: str = BootstrapOption,
) -> None:
    """The console's overview in the terminal, redrawn in place: groups, lag, rates, DLQs.

    Example: pipeline top

    Example: PIPELINE_TOPIC_PREFIX=staging. pipeline top --interval 5
    """
    settings = settings_for_cli(bootstrap)

    async def run() -> None:
        from rich.live import Live

        from pipeline.catalogue import load_catalogue
        from pipeline.console.watch import ClusterWatch
        from pipeline.errors import PipelineError
        from pipeline.kafka.connect import connect

        try:
            catalogue = load_catalogue(settings.catalogue_module, settings.topic_prefix)
        except PipelineError:
            catalogue = None
        watch = ClusterWatch(
            connect(settings),
            catalogue,
            settings.topic_prefix,
            interval,
            share_groups=queue_groups(settings),
        )
        async with watch:
            if once:
                # Rates need two samples.
                await asyncio.sleep(interval)
                stdout.print(render(await watch.sample()))
                return
            with Live(render(watch.snapshot), console=stdout, auto_refresh=False) as live:
                while True:
                    await watch.sampled.wait()
                    live.update(render(watch.snapshot), refresh=True)

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        console.print("stopped")


def render(snapshot: Snapshot) -> Group:
    from rich.console import Group
    from rich.table import Table

    from pipeline.scaling.lag import GroupLag

    groups = Table(title="consumer groups", title_justify="left")
    for column, justify in (
        ("group", "left"),
        ("state", "left"),
        ("members", "right"),
        ("topic", "left"),
        ("lag", "right"),
        ("lag (s)", "right"),
        ("in/s", "right"),
        ("out/s", "right"),
    ):
        groups.add_column(column, justify=justify)  # type: ignore[arg-type]
    for view in snapshot.groups.values():
        samples: list[GroupLag | None] = [*view.lags] or [None]
        for sample in samples:
            groups.add_row(
                view.group,
                view.description.state,
                str(len(view.description.members)),
                sample.topic if sample else "–",
                f"{sample.lag:,}" if sample else "–",
                _figure(sample.lag_seconds if sample else None, "s"),
                _figure(sample.produce_rate if sample else None),
                _figure(sample.consume_rate if sample else None),
            )
    dlqs = Table(title="dead-letter topics", title_justify="left")
    dlqs.add_column("topic")
    dlqs.add_column("records", justify="right")
    for topic in snapshot.topics.values():
        if topic.name.endswith(".dlq"):
            dlqs.add_row(topic.name, f"{topic.records:,}", style="red" if topic.records else "")
    parts: list[Table | str] = [groups, dlqs]
    if snapshot.error:
        parts.append(f"[red]last sample failed: {snapshot.error}[/]")
    return Group(*parts)


def _figure(value: float | None, unit: str = "") -> str:
    if value is None:
        return "–"
    if value == float("inf"):
        return "∞"
    return f"{value:,.1f}{unit}"
