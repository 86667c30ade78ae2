"""`pipeline infra`: a local Kafka cluster for development, tests and demos."""

from __future__ import annotations

import typer
from rich.table import Table

from pipeline.cli.common import console, report_sweep, stdout
from pipeline.dev.localkafka import LocalKafka
from pipeline.dev.registry import LocalRegistry
from pipeline.paths import cache_dir, kafka_state_dir, registry_state_dir

app = typer.Typer(
    help=(
        "Run Apache Kafka (KRaft) locally from Maven Central jars.\n\n"
        "Example: pipeline infra up --brokers 3; pipeline infra status; pipeline infra down"
    ),
    no_args_is_help=True,
)


def _cluster(heap_mb: int = 384) -> LocalKafka:
    return LocalKafka(kafka_state_dir(), cache_dir(), heap_mb=heap_mb)


def _registry() -> LocalRegistry:
    return LocalRegistry(registry_state_dir(), cache_dir())


def _sweep_chaos_leftovers() -> None:
    """A killed chaos run can leave a tmpfs or moved data in this cluster's folder."""
    from pipeline.chaos.sweep import sweep

    report_sweep(sweep(kafka_state_dir()))


def _progress(message: str) -> None:
    console.print(f"[dim]… {message}[/]")


@app.command()
def up(
    brokers: int = typer.Option(1, "--brokers", help="1, or 3 for a real quorum with RF 3."),
    heap_mb: int = typer.Option(384, "--heap-mb", help="Java heap per broker."),
    timeout: float = typer.Option(120.0, help="Seconds to wait for the cluster to answer."),
    security: str = typer.Option(
        "plaintext",
        "--security",
        help="plaintext, sasl_ssl (SCRAM-SHA-512 over TLS), sasl_plaintext or ssl (mutual "
        "TLS): with a local CA, an admin and an app principal, and ACLs.",
    ),
    registry: bool = typer.Option(
        False,
        "--registry",
        help="Also a schema registry (Apicurio, Confluent's API) for avro topics; commands "
        "find it without PIPELINE_SCHEMA_REGISTRY__URL.",
    ),
) -> None:
    """Start the cluster (or confirm the running one) and print its bootstrap address.

    A secured cluster's client settings (passwords, CA) are written to files
    only their owner can read, named here; no secret is printed.

    Example: pipeline infra up --brokers 3

    Example: pipeline infra up --registry   # for topics with format="avro"

    Example: pipeline infra up --security sasl_ssl && set -a && . .state/kafka/security/app.env
    """
    from pipeline.dev.secured import check_mode

    _sweep_chaos_leftovers()
    cluster = _cluster(heap_mb)
    state = cluster.up(
        brokers=brokers, timeout_s=timeout, progress=_progress, security=check_mode(security)
    )
    console.print(
        f"[green]Kafka is up[/]: {state.brokers} broker(s), {state.security}, "
        f"state in {kafka_state_dir()}"
    )
    secured = cluster.secured
    if secured is not None:
        console.print(
            f"client settings (PIPELINE_*): the application, allowed only {secured.prefix}* "
            f"topics and groups: {secured.folder / 'app.env'}; the administrator: "
            f"{secured.folder / 'admin.env'}. Load one with: set -a; . FILE; set +a"
        )
    if registry:
        url = _registry().up(_progress)
        console.print(f"[green]schema registry is up[/]: {url} (PIPELINE_SCHEMA_REGISTRY__URL)")
    stdout.print(state.bootstrap, highlight=False)


@app.command()
def status() -> None:
    """Show each local node: pid, port, whether it runs. Exit 1 if any is down.

    Example: pipeline infra status
    """
    cluster = _cluster()
    nodes = cluster.status()
    state = cluster.load_state()
    if state is None:
        console.print("no local cluster (start one with `pipeline infra up`)")
        raise typer.Exit(1)
    table = Table(title=f"local Kafka {state.bootstrap}")
    for column in ("node", "pid", "port", "process", "port open"):
        table.add_column(column)
    for node in nodes:
        table.add_row(
            str(node.node_id),
            str(node.pid),
            str(node.broker_port),
            "[green]running[/]" if node.alive else "[red]dead[/]",
            "yes" if node.port_open else "no",
        )
    stdout.print(table)
    if not all(node.alive and node.port_open for node in nodes):
        raise typer.Exit(1)


@app.command()
def bootstrap() -> None:
    """Print the local cluster's bootstrap address (for PIPELINE_BOOTSTRAP_SERVERS).

    Example: export PIPELINE_BOOTSTRAP_SERVERS=$(pipeline infra bootstrap)
    """
    state = _cluster().load_state()
    if state is None:
        console.print("no local cluster (start one with `pipeline infra up`)")
        raise typer.Exit(1)
    stdout.print(state.bootstrap, highlight=False)


@app.command()
def down() -> None:
    """Stop every local node (SIGTERM, SIGKILL after 30 s).

    Example: pipeline infra down
    """
    _sweep_chaos_leftovers()
    stopped = _cluster().down()
    console.print("Kafka stopped" if stopped else "nothing was running")
    local_registry = _registry()
    if local_registry.url is not None:
        local_registry.down()
        console.print("schema registry stopped")


@app.command()
def fetch() -> None:
    """Resolve the Kafka jars with Maven now (the first `up` does it otherwise).

    Example: pipeline infra fetch
    """
    from pipeline.dev.kafka_jars import resolve_classpath

    classpath = resolve_classpath(cache_dir(), _progress)
    console.print(f"Kafka jars ready ({len(classpath.split(':'))} jars, cached in ~/.m2)")
