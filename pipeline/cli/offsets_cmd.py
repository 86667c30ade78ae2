"""`pipeline offsets reset`: move a consumer group's committed offsets."""

from __future__ import annotations

import typer
from rich.table import Table

from pipeline.cli.common import BootstrapOption, cluster_topic, console, settings_for_cli, stdout
from pipeline.errors import ConfigError
from pipeline.kafka.aiokafka.probe import run_sync
from pipeline.kafka.connect import connect

app = typer.Typer(
    help="Consumer-group offsets.\n\n"
    "Example: pipeline offsets reset --group enrich_orders --topic orders --to-datetime "
    "2026-11-27T00:00Z --dry-run",
    no_args_is_help=True,
)


@app.command()
def reset(
    group: str = typer.Option(..., "--group", "-g", help="The consumer group to move."),
    topic: str = typer.Option(
        ..., "--topic", help="Its topic (a catalogue name gets PIPELINE_TOPIC_PREFIX)."
    ),
    to_datetime: str = typer.Option(None, "--to-datetime", help="First record at/after it."),
    to_offset: int = typer.Option(None, "--to-offset", help="This offset on every partition."),
    to_earliest: bool = typer.Option(False, "--to-earliest", help="The log start: redo all."),
    to_latest: bool = typer.Option(False, "--to-latest", help="The log end: skip the backlog."),
    shift_by: int = typer.Option(None, "--shift-by", help="Move by N (negative: back)."),
    partitions: str = typer.Option(None, "--partitions", help="Only these, e.g. 0,3."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the table, change nothing."),
    force: bool = typer.Option(False, "--force", help="Try even while members are active."),
    bootstrap: str = BootstrapOption,
) -> None:
    """Show the before/after table and commit the new offsets for the group.

    Refuses while the group has active members (they would overwrite the new
    offsets with their next commit) unless --force.

    Example: pipeline offsets reset --group order_stats --topic orders.enriched --shift-by -1000
    """
    from datetime import datetime

    from pipeline.ops.offset_ranges import parse_partitions, parse_position
    from pipeline.ops.offset_reset import ResetTarget, apply_reset, plan_reset
    from pipeline.reading.offsets import group_member_count

    settings = settings_for_cli(bootstrap)
    clients = connect(settings)
    topic = cluster_topic(settings, topic)
    moment = parse_position(to_datetime, "--to-datetime") if to_datetime else None
    if moment is not None and not isinstance(moment, datetime):
        raise ConfigError(f"--to-datetime {to_datetime!r} is not an ISO time")
    target = ResetTarget(
        to_datetime=moment,
        to_offset=to_offset,
        to_earliest=to_earliest,
        to_latest=to_latest,
        shift_by=shift_by,
    )
    rows = run_sync(plan_reset(clients, group, topic, target, parse_partitions(partitions)))
    table = Table(title=f"group {group} on {topic}" + (" (dry run)" if dry_run else ""))
    for column in ("partition", "log start", "log end", "committed now", "new", "moves"):
        table.add_column(column, justify="right")
    for row in rows:
        before = "–" if row.before is None else f"{row.before:,}"
        moves = "" if row.before is None else f"{row.after - row.before:+,}"
        table.add_row(
            str(row.partition),
            f"{row.log_start:,}",
            f"{row.log_end:,}",
            before,
            f"{row.after:,}",
            moves,
        )
    stdout.print(table)
    if dry_run:
        console.print("dry run: nothing changed")
        return
    members = run_sync(group_member_count(clients, group))
    if members and not force:
        raise ConfigError(
            f"group {group!r} has {members} active member(s); stop them first "
            "(their next commit would undo the reset), or pass --force"
        )
    run_sync(apply_reset(clients, group, topic, rows))
    console.print(f"[green]offsets of {len(rows)} partition(s) reset[/]")
