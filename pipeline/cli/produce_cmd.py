"""`pipeline produce`: publish a JSON Lines file or stdin through the catalogue."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import IO

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from pipeline.cli.common import BootstrapOption, catalogue_for, console, settings_for_cli
from pipeline.kafka.aiokafka.probe import run_sync
from pipeline.ops.file_ingest import IngestSummary, Reject, publish_lines
from pipeline.publishing.producer import EventProducer
from pipeline.runtime.gc_tuning import tune_for_throughput

MAX_REJECTS_SHOWN = 20


def _parse_rate(text: str | None) -> float | None:
    if text is None:
        return None
    value = text.removesuffix("/s")
    try:
        rate = float(value)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a rate; write e.g. 500 or 500/s") from None
    if rate <= 0:
        raise typer.BadParameter("the rate must be positive")
    return rate


def produce(
    topic: str = typer.Option(..., "--topic", "-t", help="Catalogue topic, e.g. orders."),
    file: str = typer.Option(..., "--file", "-f", help="JSON Lines file, or - for stdin."),
    rate: str | None = typer.Option(None, "--rate", help="Events per second at most, e.g. 500/s."),
    rejects: Path | None = typer.Option(
        None, "--rejects", help="Write rejected lines (with line, field, reason) here as JSONL."
    ),
    allow_rejects: bool = typer.Option(
        False, "--allow-rejects", help="Exit 0 even if some lines were rejected."
    ),
    bootstrap: str | None = BootstrapOption,
) -> None:
    """Validate every line against the topic's event model and publish it.

    Rejected lines are reported with line number, field and reason, written
    to --rejects if given, and never published. Exit status: 0 all published,
    1 some lines rejected (0 with --allow-rejects), 2 a fatal error.

    Example: pipeline produce --topic orders --file orders.jsonl --rejects bad.jsonl --rate 2000/s
    """
    rate_per_s = _parse_rate(rate)
    settings = settings_for_cli(bootstrap)
    spec = catalogue_for(settings).get(topic)
    if file != "-" and not Path(file).exists():
        console.print(f"[bold red]error:[/] input file {file} does not exist")
        raise typer.Exit(2)
    total_bytes = os.path.getsize(file) if file != "-" else None
    tune_for_throughput()
    shown = 0

    def on_reject(reject: Reject) -> None:
        nonlocal shown
        if shown < MAX_REJECTS_SHOWN:
            console.print(f"[red]rejected[/] {reject.describe()}", highlight=False)
        elif shown == MAX_REJECTS_SHOWN:
            console.print("[red]… more rejects; see the rejects file[/]")
        shown += 1

    with contextlib.ExitStack() as stack:
        source: IO[str] = (
            sys.stdin if file == "-" else stack.enter_context(open(file, encoding="utf-8"))
        )
        rejects_out = stack.enter_context(open(rejects, "w", encoding="utf-8")) if rejects else None
        progress = stack.enter_context(
            Progress(
                TextColumn(f"[bold]{spec.name}[/]"),
                BarColumn(),
                DownloadColumn(),
                TextColumn("{task.fields[published]} published, {task.fields[rejected]} rejected"),
                TextColumn("{task.fields[rate]:,.0f} ev/s"),
                TimeElapsedColumn(),
                console=console,
                transient=False,
            )
        )
        task = progress.add_task("publish", total=total_bytes, published=0, rejected=0, rate=0.0)

        def on_progress(summary: IngestSummary, bytes_read: int) -> None:
            progress.update(
                task,
                completed=bytes_read,
                published=summary.published,
                rejected=summary.rejected,
                rate=summary.events_per_s,
            )

        async def run() -> IngestSummary:
            async with EventProducer(settings) as producer:
                return await publish_lines(
                    producer,
                    spec,
                    source,
                    rejects=rejects_out,
                    rate_per_s=rate_per_s,
                    on_progress=on_progress,
                    on_reject=on_reject,
                )

        summary = run_sync(run())
    console.print(
        f"[bold]{summary.published}[/] published to {spec.name}, "
        f"[bold]{summary.rejected}[/] rejected, {summary.lines} lines read, "
        f"{summary.events_per_s:,.0f} events/s",
        highlight=False,
    )
    if summary.rejected and rejects:
        console.print(f"rejected lines are in {rejects}")
    if summary.rejected and not allow_rejects:
        raise typer.Exit(1)
