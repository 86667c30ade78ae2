"""`pipeline db`: a local PostgreSQL for the sink, and the schema migrations."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.cli.common import console, settings_for_cli, stdout
from pipeline.dev.localpg import LocalPostgres
from pipeline.kafka.aiokafka.probe import run_sync
from pipeline.paths import postgres_state_dir

app = typer.Typer(
    help=(
        "PostgreSQL for sinks and lookups: a local cluster from Debian's packages, "
        "and schema migrations.\n\n"
        "Example: pipeline db up; pipeline db migrate; psql $(pipeline db url)"
    ),
    no_args_is_help=True,
)


def _cluster() -> LocalPostgres:
    return LocalPostgres(postgres_state_dir())


def _progress(message: str) -> None:
    console.print(f"[dim]… {message}[/]")


@app.command()
def up() -> None:
    """Start the local PostgreSQL (initialising it on first use) and print its URL.

    Example: pipeline db up
    """
    url = _cluster().up(progress=_progress)
    console.print(f"[green]PostgreSQL is up[/], data in {postgres_state_dir()}")
    stdout.print(url, highlight=False)


@app.command()
def status() -> None:
    """Whether the local PostgreSQL runs; exit 1 if not.

    Example: pipeline db status
    """
    cluster = _cluster()
    state = cluster.load_state()
    if state is None or not cluster.running():
        console.print("local PostgreSQL is not running (start it with `pipeline db up`)")
        raise typer.Exit(1)
    console.print(f"[green]running[/] on 127.0.0.1:{state.port}")
    stdout.print(state.url, highlight=False)


@app.command()
def url() -> None:
    """Print the local PostgreSQL's URL (for PIPELINE_DATABASE_URL).

    Example: export PIPELINE_DATABASE_URL=$(pipeline db url)
    """
    state = _cluster().load_state()
    if state is None:
        console.print("no local PostgreSQL (start one with `pipeline db up`)")
        raise typer.Exit(1)
    stdout.print(state.url, highlight=False)


@app.command()
def down() -> None:
    """Stop the local PostgreSQL (its data stays until `make clean`).

    Example: pipeline db down
    """
    console.print("PostgreSQL stopped" if _cluster().down() else "nothing was running")


@app.command()
def migrate(
    directory: Path = typer.Option(
        None, "--dir", help="Folder of *.sql migrations (default: PIPELINE_DB__MIGRATIONS_DIR)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be applied."),
) -> None:
    """Apply the SQL migrations not applied yet, each in its own transaction, in name order.

    Safe to run from several replicas at once: an advisory lock serialises them.

    Example: pipeline db migrate --dry-run
    """
    from pipeline.errors import ConfigError
    from pipeline.stores.migrations import migrate as run_migrations

    settings = settings_for_cli()
    if settings.database_url is None:
        raise ConfigError(
            "no database: set PIPELINE_DATABASE_URL, or start a local one with `pipeline db up`"
        )
    report = run_sync(
        run_migrations(
            settings.database_url.get_secret_value(),
            directory or settings.db.migrations_dir,
            dry_run=dry_run,
        )
    )
    verb = "would apply" if dry_run else "applied"
    for version in report.applied:
        console.print(f"{verb} [bold]{version}[/]")
    console.print(f"{len(report.applied)} {verb}, {len(report.already)} already applied")
    for version in report.edited_after_applying:
        console.print(
            f"[yellow]warning:[/] {version} changed after it was applied; it is not re-run. "
            "Put schema changes in a new migration file."
        )
