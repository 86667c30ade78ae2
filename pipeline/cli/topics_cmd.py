"""`pipeline topics`: make the cluster match the catalogue, and look at it."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from pipeline.cli.common import BootstrapOption, catalogue_for, console, settings_for_cli, stdout
from pipeline.cli.schemas_cmd import print_checks, registry_from
from pipeline.errors import ConfigError
from pipeline.kafka.aiokafka.probe import run_sync
from pipeline.kafka.connect import connect
from pipeline.ops.changelogs import ensure_changelogs
from pipeline.ops.registry_subjects import check_subjects, register_subjects, registry_topics
from pipeline.ops.schema_registry import registered_schemas
from pipeline.ops.topic_plan import TopicPlan
from pipeline.ops.topics import TopicsOnCluster, plan_with_schemas
from pipeline.settings import PipelineSettings

if TYPE_CHECKING:
    from pipeline.kafka.port import Clients
    from pipeline.processor import Processor

app = typer.Typer(
    help=(
        "Topics from the catalogue (topics/): apply, list, describe.\n\n"
        "Example: pipeline topics apply --dry-run && pipeline topics apply"
    ),
    no_args_is_help=True,
)


def _print_plan(plan: TopicPlan) -> None:
    table = Table(title="topics: catalogue vs cluster")
    table.add_column("topic")
    table.add_column("action")
    table.add_column("detail")
    table.add_column("schema")
    colours = {"create": "green", "update": "yellow", "unchanged": "dim"}
    for change in plan.changes:
        colour = colours[change.action]
        table.add_row(
            change.topic,
            f"[{colour}]{change.action}[/]",
            change.describe(),
            plan.schema_changes.get(change.topic, ""),
        )
    stdout.print(table)
    for warning in plan.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    for error in plan.errors:
        console.print(f"[bold red]error:[/] {escape(error)}", highlight=False)


@app.command()
def apply(
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the changes, make none."),
    allow_incompatible: bool = typer.Option(
        False,
        "--allow-incompatible",
        help="Apply a model that breaks the topic's compatibility mode (warns, field by field).",
    ),
    bootstrap: str | None = BootstrapOption,
) -> None:
    """Create missing topics and their DLQs, add partitions, update configs, register schemas.

    Refuses, changing nothing, when the catalogue asks for fewer partitions or
    a different key than the cluster has, or changes an event model in a way
    the topic's compatibility mode (TopicSpec.compatibility, backward by
    default) does not allow: each field that breaks, and what to do instead.
    Avro topics' schemas are checked against the schema registry the same way
    and registered (with the subject's compatibility level) before any topic
    changes.

    Example: pipeline topics apply --dry-run

    Example: pipeline topics apply --allow-incompatible   # every reader is ready
    """
    settings = settings_for_cli(bootstrap)
    specs = catalogue_for(settings).with_dlqs()
    in_registry = registry_topics(specs)
    registry = registry_from(settings) if in_registry else None

    async def run() -> int:
        subjects = await check_subjects(registry, in_registry) if registry else []
        if subjects:
            print_checks(subjects)
        async with TopicsOnCluster(connect(settings), settings.topic_prefix) as admin:
            plan, brokers = await plan_with_schemas(admin, specs, allow_incompatible)
            _print_plan(plan)
            refused = [c for c in subjects if c.action == "incompatible"]
            if plan.errors or refused:
                console.print("[bold red]nothing was changed[/]: fix the errors above first")
                return 1
            if dry_run:
                registering = sum(1 for c in subjects if c.action == "register")
                console.print(
                    f"dry run: {len(plan.pending)} topic(s) would change, "
                    f"{registering} schema(s) would be registered"
                )
                await _processor_parts(settings, {spec.name for spec in specs}, dry_run=True)
                return 0
            if registry is not None:
                await register_subjects(registry, subjects)
            await admin.apply(plan, brokers)
            console.print(f"[green]applied[/]: {len(plan.pending)} topic(s) changed")
        await _processor_parts(settings, {spec.name for spec in specs}, dry_run=False)
        return 0

    raise typer.Exit(run_sync(run()))


async def _processor_parts(settings: PipelineSettings, topics: set[str], dry_run: bool) -> None:
    """What the processors reading `topics` (the catalogue's) need besides topics: their
    stores' changelogs (pipeline.ops.changelogs) and their share groups' configs
    (pipeline.ops.share_groups); a processor reading another topic sets them up at start."""
    from pipeline.processor import load_processors

    try:
        processors = load_processors(settings.processors_module, settings.topic_prefix)
    except ConfigError as exc:
        console.print(f"changelogs and share groups not checked: {escape(str(exc))}")
        return
    clients = connect(settings)
    for processor in processors.values():
        if processor.source.name not in topics:
            continue
        if processor.delivery == "queue":
            await _share_group(clients, processor, dry_run)
        if not processor.state_stores:
            continue
        try:
            missing = await ensure_changelogs(
                clients, processor, processor.group_id, create=not dry_run
            )
        except ConfigError as exc:
            if not dry_run:
                raise
            console.print(f"changelogs of {processor.name!r}: {escape(str(exc))}")
            continue
        for name in missing:
            done = "would create" if dry_run else "[green]created[/]"
            console.print(f"{done} changelog {name} (compacted, partitions as its source)")


@app.command("list")
def list_topics(bootstrap: str | None = BootstrapOption) -> None:
    """Catalogue topics with their state on the cluster.

    Example: pipeline topics list
    """
    settings = settings_for_cli(bootstrap)
    specs = catalogue_for(settings).with_dlqs()

    async def run() -> None:
        async with TopicsOnCluster(connect(settings), settings.topic_prefix) as admin:
            layouts = await admin.partitions([spec.name for spec in specs])
        table = Table(title=f"topics at {settings.bootstrap_servers}")
        for column in ("topic", "event", "key", "partitions", "RF", "cleanup", "on cluster"):
            table.add_column(column)
        for spec in specs:
            layout = layouts.get(spec.name)
            table.add_row(
                spec.name,
                spec.event_type,
                spec.key_field,
                str(len(layout)) if layout else str(spec.partitions),
                str(len(layout[0].replicas)) if layout else str(spec.replication_factor),
                spec.cleanup_policy,
                "[green]yes[/]" if layout else "[red]missing[/]",
            )
        stdout.print(table)

    run_sync(run())


@app.command()
def describe(
    name: str = typer.Argument(..., help="Topic name, e.g. orders or orders.dlq."),
    bootstrap: str | None = BootstrapOption,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """One topic: its declaration, partitions (leader, replicas, ISR), configs and schema.

    Example: pipeline topics describe orders
    """
    settings = settings_for_cli(bootstrap)
    spec = catalogue_for(settings).get(name)

    async def run() -> None:
        async with TopicsOnCluster(connect(settings), settings.topic_prefix) as admin:
            layouts = await admin.partitions([spec.name])
            configs = (await admin.configs([spec.name])).get(spec.name, {}) if layouts else {}
            versions = registered_schemas(await admin.recorded()).get(spec.name, [])
        layout = layouts.get(spec.name, [])
        if as_json:
            stdout.print_json(
                json.dumps(
                    {
                        "topic": spec.name,
                        "event_type": spec.event_type,
                        "schema_version": spec.schema_version,
                        "key_field": spec.key_field,
                        "format": spec.format,
                        "exists": bool(layout),
                        "partitions": [info.__dict__ for info in layout],
                        "configs": {k: configs.get(k) for k in sorted(spec.topic_configs(3))},
                        "schema": spec.event_model.model_json_schema(),
                        "compatibility": spec.compatibility,
                        "registered_versions": [
                            {
                                "version": v.version,
                                "compatibility": v.compatibility,
                                "applied_at_ms": v.applied_at_ms,
                            }
                            for v in versions
                        ],
                    }
                )
            )
            return
        stdout.print(
            f"[bold]{spec.name}[/]: {spec.event_type} v{spec.schema_version} in {spec.format}, "
            f"keyed by {spec.key_field!r}, "
            + ("on the cluster" if layout else "[red]missing on the cluster[/]")
        )
        if layout:
            table = Table(title="partitions")
            for column in ("partition", "leader", "replicas", "in sync"):
                table.add_column(column)
            for info in layout:
                table.add_row(
                    str(info.partition),
                    str(info.leader),
                    ",".join(map(str, info.replicas)),
                    ",".join(map(str, info.isr)),
                )
            stdout.print(table)
            for key in sorted(spec.topic_configs(3)):
                stdout.print(f"  {key} = {configs.get(key)}")
        fields = Table(title=f"{spec.event_model.__name__} fields")
        fields.add_column("field")
        fields.add_column("type")
        fields.add_column("required")
        for field_name, field_info in spec.event_model.model_fields.items():
            fields.add_row(
                field_name,
                str(field_info.annotation),
                "yes" if field_info.is_required() else "no",
            )
        stdout.print(fields)
        registered = ", ".join(f"v{v.version}" for v in versions) or "none yet (topics apply)"
        stdout.print(
            f"schema versions registered: {registered}; declared v{spec.schema_version}, "
            f"{spec.compatibility} compatible"
            + (f", upcasters from {sorted(spec.upcasters)}" if spec.upcasters else "")
        )

    run_sync(run())


async def _share_group(clients: Clients, processor: Processor[Any], dry_run: bool) -> None:
    from pipeline.ops.share_groups import configure_share_group
    from pipeline.queue_delivery import share_group_configs

    configs = ", ".join(f"{k}={v}" for k, v in share_group_configs(processor).items())
    if dry_run:
        console.print(f"would set share group {processor.group_id}: {configs}")
        return
    await configure_share_group(clients, processor, processor.group_id)
    console.print(f"[green]set[/] share group {processor.group_id}: {configs}")
