"""`pipeline schemas`: the catalogue's registry-format topics against the schema registry."""

from __future__ import annotations

import json
from collections.abc import Sequence

import typer
from rich.markup import escape
from rich.table import Table

from pipeline.cli.common import catalogue_for, console, settings_for_cli, stdout
from pipeline.errors import ConfigError
from pipeline.kafka.aiokafka.probe import run_sync
from pipeline.ops.registry_subjects import (
    SubjectCheck,
    check_subjects,
    describe_checks,
    registry_topics,
)
from pipeline.settings import PipelineSettings
from pipeline.wire.registry import SchemaRegistry

app = typer.Typer(
    help=(
        "Schemas of avro topics in the schema registry: check before deploying.\n\n"
        "Example: pipeline schemas check"
    ),
    no_args_is_help=True,
)


def registry_from(settings: PipelineSettings) -> SchemaRegistry:
    if not settings.schema_registry.url:
        raise ConfigError(
            "the catalogue has avro topics but no schema registry is set: "
            "PIPELINE_SCHEMA_REGISTRY__URL, or `pipeline infra up --registry` locally"
        )
    return SchemaRegistry.from_settings(settings.schema_registry)


def print_checks(checks: Sequence[SubjectCheck]) -> None:
    table = Table(title="schemas: catalogue vs registry")
    for column in ("topic", "subject", "action", "detail"):
        table.add_column(column)
    colours = {"register": "green", "unchanged": "dim", "incompatible": "bold red"}
    for check in checks:
        table.add_row(
            check.topic,
            check.subject,
            f"[{colours[check.action]}]{check.action}[/]",
            escape(check.describe()),
        )
    stdout.print(table)


@app.command()
def check(
    as_json: bool = typer.Option(False, "--json", help="One JSON object per topic."),
) -> None:
    """Would the registry accept each avro topic's model? Exit 1 if any is incompatible.

    Each topic's model is compared with the latest version under its subject,
    under the topic's compatibility mode (TopicSpec.compatibility): the
    registry decides, and each field that breaks it is named. Nothing is
    registered; `pipeline topics apply` does that.

    Example: pipeline schemas check && pipeline topics apply
    """
    settings = settings_for_cli()
    specs = registry_topics(list(catalogue_for(settings)))
    if not specs:
        console.print("no topic of the catalogue is in avro, json_schema or protobuf")
        return
    checks = run_sync(check_subjects(registry_from(settings), specs))
    if as_json:
        stdout.print_json(json.dumps(describe_checks(checks)))
    else:
        print_checks(checks)
    if any(c.action == "incompatible" for c in checks):
        console.print(
            "[bold red]incompatible[/]: deploying these models would break readers; "
            "add defaults, or move the change to a new topic"
        )
        raise typer.Exit(1)
