"""`pipeline`: the one front door (infra, topics, produce, and later more)."""

from __future__ import annotations

import sys

import typer

from pipeline.cli import (
    chaos_cmd,
    console_cmd,
    db_cmd,
    dlq_cmd,
    gateway_cmd,
    infra_cmd,
    k8s_cmd,
    lag_cmd,
    new_cmd,
    offsets_cmd,
    produce_cmd,
    replay_cmd,
    scale_cmd,
    schemas_cmd,
    topics_cmd,
    worker_cmd,
)
from pipeline.cli.common import console
from pipeline.errors import PipelineError

app = typer.Typer(
    name="pipeline",
    help=(
        "Event pipelines on Apache Kafka.\n\n"
        "Example, from a fresh checkout:\n\n"
        "  pipeline infra up && export PIPELINE_BOOTSTRAP_SERVERS=$(pipeline infra bootstrap)\n\n"
        "  pipeline topics apply\n\n"
        "  pipeline produce --topic orders --file events.jsonl"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(infra_cmd.app, name="infra")
app.add_typer(topics_cmd.app, name="topics")
app.add_typer(db_cmd.app, name="db")
app.add_typer(k8s_cmd.app, name="k8s")
app.add_typer(dlq_cmd.app, name="dlq")
app.add_typer(offsets_cmd.app, name="offsets")
app.add_typer(chaos_cmd.app, name="chaos")
app.add_typer(schemas_cmd.app, name="schemas")
app.command("new")(new_cmd.new)
app.command("produce")(produce_cmd.produce)
app.command("worker")(worker_cmd.worker)
app.command("lag")(lag_cmd.lag)
app.command("scale")(scale_cmd.scale)
app.command("replay")(replay_cmd.replay)
app.command("gateway")(gateway_cmd.gateway)
app.command("console")(console_cmd.console_command)
app.command("top")(console_cmd.top)


def main() -> None:
    try:
        app()
    except PipelineError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
