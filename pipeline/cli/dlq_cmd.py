"""`pipeline dlq`: look into dead-letter topics and redrive their records."""

from __future__ import annotations

import json
from datetime import datetime

import typer
from rich.table import Table

from pipeline.cli.common import BootstrapOption, cluster_topic, console, settings_for_cli, stdout
from pipeline.errors import ConfigError
from pipeline.kafka.aiokafka.probe import run_sync
from pipeline.kafka.connect import connect
from pipeline.wire import dlq_headers as dlq

app = typer.Typer(
    help="Dead-letter topics.\n\n"
    "Example: pipeline dlq inspect --topic orders.dlq; "
    "pipeline dlq redrive --topic orders.dlq --error-type TimeoutError --dry-run",
    no_args_is_help=True,
)


def _since(text: str | None) -> datetime | None:
    from pipeline.ops.offset_ranges import parse_position

    if text is None:
        return None
    moment = parse_position(text, "--since")
    if not isinstance(moment, datetime):
        raise ConfigError(f"--since {text!r} is not an ISO time (2026-11-01T10:00Z)")
    return moment


@app.command()
def inspect(
    topic: str = typer.Option(
        ..., "--topic", help="The DLQ topic, e.g. orders.dlq (PIPELINE_TOPIC_PREFIX applies)."
    ),
    since: str = typer.Option(None, "--since", help="Only records written at/after (ISO)."),
    error_type: str = typer.Option(None, "--error-type", help="Only this error type."),
    limit: int = typer.Option(5, "--limit", help="Sample records to show."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object instead of tables."),
    bootstrap: str = BootstrapOption,
) -> None:
    """A summary by error type and processor, and sample records with their headers.

    Example: pipeline dlq inspect --topic orders.dlq --since 2026-11-28T00:00Z --limit 3
    """
    from pipeline.ops.dlq_tools import read_entries, summarize
    from pipeline.wire.registry import configure_registry

    settings = settings_for_cli(bootstrap)
    configure_registry(settings.schema_registry)  # Avro values are shown decoded
    topic = cluster_topic(settings, topic)
    entries, _ = run_sync(read_entries(connect(settings), topic, _since(since), error_type))
    summary = summarize(entries, limit)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "topic": topic,
                    "total": summary.total,
                    "by_cause": [
                        {"error_type": e, "processor": p, "count": n}
                        for e, p, n in summary.by_cause
                    ],
                    "samples": [entry.to_json() for entry in summary.samples],
                },
                default=str,
            )
        )
        return
    table = Table(title=f"{topic}: {summary.total:,} record(s)")
    for column in ("error type", "processor", "records"):
        table.add_column(column)
    for error, processor, count in summary.by_cause:
        table.add_row(error, processor, f"{count:,}")
    stdout.print(table)
    for entry in summary.samples:
        sample = entry.to_json()
        headers = sample["headers"]
        assert isinstance(headers, dict)
        stdout.print(
            f"[bold]{sample['dlq']}[/] key={sample['key']!r} "
            f"{headers.get('dlq-error-type')}: {headers.get('dlq-error-message')}",
            highlight=False,
        )
        stdout.print(f"  value: {sample['value']!r}", highlight=False, markup=False)


@app.command()
def redrive(
    topic: str = typer.Option(
        ..., "--topic", help="The DLQ topic, e.g. orders.dlq (PIPELINE_TOPIC_PREFIX applies)."
    ),
    error_type: str = typer.Option(None, "--error-type", help="Only this error type."),
    since: str = typer.Option(None, "--since", help="Only records written at/after (ISO)."),
    rate: float = typer.Option(None, "--rate", help="At most this many records/s."),
    max_redrives: int = typer.Option(
        3, "--max-redrives", help="Leave records that came back this often already."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would go back."),
    bootstrap: str = BootstrapOption,
) -> None:
    """Republish DLQ records to their source topics (once: progress is kept in a group).

    Example: pipeline dlq redrive --topic orders.dlq --error-type ConnectionError --rate 500
    """
    from pipeline.ops.dlq_tools import plan_redrive
    from pipeline.ops.dlq_tools import redrive as send

    settings = settings_for_cli(bootstrap)
    topic = cluster_topic(settings, topic)
    clients = connect(settings)
    plan = run_sync(plan_redrive(clients, topic, _since(since), error_type, max_redrives))
    by_source: dict[str, int] = {}
    for entry in plan.to_send:
        source = entry.header(dlq.SOURCE_TOPIC) or "?"
        by_source[source] = by_source.get(source, 0) + 1
    for entry in plan.too_often:
        console.print(
            f"[yellow]left in place[/]: {entry.where()} came back {entry.redrives} time(s) "
            f"already ({entry.error_type}); fix the cause, then raise --max-redrives"
        )
    summary = ", ".join(f"{n:,} to {source}" for source, n in by_source.items()) or "nothing"
    if dry_run:
        console.print(f"dry run: would redrive {summary} (group {plan.group} unchanged)")
        return
    sent = run_sync(send(settings, clients, plan, rate))
    console.print(
        f"[green]redrove {sent:,} record(s)[/] ({summary}); "
        f"{len(plan.too_often):,} left in place; progress in group {plan.group}"
    )
