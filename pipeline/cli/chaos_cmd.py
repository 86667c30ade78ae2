"""`pipeline chaos`: break a local three-broker cluster under a live pipeline, and judge it."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from pipeline.chaos.cluster import ChaosCluster
from pipeline.chaos.ledger import Ledger, guarded
from pipeline.chaos.run import RunOptions, ScenarioResult, run_scenario
from pipeline.chaos.scenarios import SCENARIOS
from pipeline.chaos.sweep import OWN_CLUSTER_PREFIX, sweep
from pipeline.chaos.undo import Undo
from pipeline.cli.common import console, report_sweep, stdout
from pipeline.dev.localkafka import LocalKafka
from pipeline.errors import ConfigError
from pipeline.paths import cache_dir, kafka_state_dir
from pipeline.telemetry.client_logs import setup_process_logging

app = typer.Typer(
    help=(
        "Faults injected into a live pipeline on the local 3-broker cluster, judged from the "
        "topics: lost, duplicated and reordered events, the longest output gap, the time to "
        "recover.\n\n"
        "Example: pipeline infra up --brokers 3 && pipeline chaos run --scenario leader-bounce"
    ),
    no_args_is_help=True,
)

wide = Console(stderr=True, width=150)
"""The table's console: rich wraps at 80 columns when the output is not a terminal."""

COLUMNS = (
    ("scenario", "name"),
    ("events", "events_in"),
    ("outputs", "outputs"),
    ("lost", "lost"),
    ("dupes", "duplicates"),
    ("order", "order_violations"),
    ("DLQ", "dead_letters"),
    ("max gap s", "max_gap_s"),
    ("recovery s", "recovery_s"),
    ("exits", "replica_exits"),
    ("commit back", "commit_regressions"),
)


@app.command("list")
def list_scenarios() -> None:
    """The scenarios, with what each does.

    Example: pipeline chaos list
    """
    for name, scenario in SCENARIOS.items():
        stdout.print(f"{name:18} {scenario.summary}", highlight=False)


@contextlib.contextmanager
def _cluster(own: bool, ledger: Ledger, precheck: Callable[[Path], None]) -> Iterator[ChaosCluster]:
    """The user's local cluster, or one of the run's own in a temporary folder.

    `precheck` sees the folder the cluster's data lives in before any
    scenario runs (and before an own cluster is started).
    """
    if not own:
        precheck(kafka_state_dir())
        yield ChaosCluster(
            LocalKafka(kafka_state_dir(), cache_dir()),
            os.environ.get("PIPELINE_BOOTSTRAP_SERVERS"),
        )
        return
    folder = Path(tempfile.mkdtemp(prefix=OWN_CLUSTER_PREFIX))
    recorded = ledger.record(Undo("cluster", path=str(folder)))
    try:
        precheck(folder)
        kafka = LocalKafka(folder, cache_dir(), heap_mb=320)
        kafka.up(brokers=3, progress=lambda m: console.print(f"[dim]… {m}[/]"))
        yield ChaosCluster(kafka)
    finally:
        ledger.settle(recorded)  # its nodes stopped, anything mounted in it undone, removed


@app.command("sweep")
def sweep_command() -> None:
    """Undo what killed chaos runs left (mounts, moved data, stray processes); exit 1 if stuck.

    A run killed with SIGKILL cannot clean up after itself: its tmpfs stays
    mounted, a worker it froze stays stopped, its replicas and own cluster
    run on. `chaos run`, `infra up` and `infra down` sweep first anyway;
    a live run's changes are never touched.

    Example: pipeline chaos sweep
    """
    report = sweep(kafka_state_dir())
    report_sweep(report)
    if not report.done and not report.problems:
        console.print("nothing left behind by a chaos run")
    if report.problems:
        raise typer.Exit(1)


@app.command("run")
def run(
    scenario: list[str] = typer.Option(
        None, "--scenario", "-s", help="A scenario to run (repeat for more); see `chaos list`."
    ),
    run_all: bool = typer.Option(False, "--all", help="Every scenario, one after another."),
    as_json: bool = typer.Option(
        False, "--json", help="End with one JSON line of every scenario's figures."
    ),
    rate: int = typer.Option(400, help="Events per second the load offers."),
    keys: int = typer.Option(200, help="Keys the load spreads over (order is checked per key)."),
    bounces: int = typer.Option(5, help="Broker bounces in leader-bounce and controller-bounce."),
    warmup: float = typer.Option(15.0, help="Seconds of load before the fault."),
    settle: float = typer.Option(30.0, help="Seconds of load after the fault."),
    client: str = typer.Option("aiokafka", help="The workers' Kafka client: aiokafka|confluent."),
    exactly_once: bool = typer.Option(
        False,
        "--exactly-once",
        help="The checking processor with transactions; outputs read committed (duplicates "
        "should be 0; fencing a frozen replica needs --client confluent).",
    ),
    stateful: bool = typer.Option(
        False,
        "--stateful",
        help="The checker that also counts each key's events in a store with a changelog and "
        "a standby (lanes=1): the verdict checks no count was lost (with --exactly-once, none "
        "repeated either).",
    ),
    own_cluster: bool = typer.Option(
        False,
        "--own-cluster",
        help="Start a 3-broker cluster of its own in a temporary folder (and stop it after) "
        "instead of using the one `pipeline infra up --brokers 3` started.",
    ),
    log_dir: Path = typer.Option(
        Path("chaos-logs"), help="Where each replica's log goes (one folder per scenario)."
    ),
) -> None:
    """Run scenarios; exit 1 if any lost or reordered an event (or, --stateful, a count).

    Example: pipeline chaos run --scenario frozen-replica --scenario blocked-loop

    Example: pipeline chaos run --all --json > chaos.txt

    Example: pipeline chaos run --scenario kill9 --stateful --exactly-once --client confluent
    """
    names = list(SCENARIOS) if run_all else list(scenario or [])
    if not names:
        raise ConfigError("name a scenario (--scenario NAME, see `pipeline chaos list`) or --all")
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        raise ConfigError(f"no scenario {unknown}; known: {', '.join(SCENARIOS)}")
    if client not in ("aiokafka", "confluent"):
        raise ConfigError(f"--client must be aiokafka or confluent, not {client!r}")
    setup_process_logging("INFO", "chaos")
    report_sweep(sweep(kafka_state_dir()))
    options = RunOptions(
        rate=rate,
        keys=keys,
        warmup_s=warmup,
        settle_s=settle,
        bounces=bounces,
        client=client,
        exactly_once=exactly_once,
        stateful=stateful,
        log_dir=log_dir,
    )
    results: list[ScenarioResult] = []
    started = time.monotonic()

    def precheck(cluster_dir: Path) -> None:
        for name in names:
            check = SCENARIOS[name].precheck
            if check is not None:
                check(cluster_dir)

    with guarded() as ledger, _cluster(own_cluster, ledger, precheck) as cluster:
        for name in names:
            console.print(f"[bold]chaos[/] {name}: {SCENARIOS[name].summary}")
            results.append(run_scenario(cluster, SCENARIOS[name], options, ledger))
            wide.print(render([results[-1]]))
    wide.print(render(results))
    console.print(f"{len(results)} scenario(s) in {time.monotonic() - started:,.0f}s")
    if as_json:
        # print, not rich: one line however long.
        print(json.dumps({"scenarios": {r.name: r.figures() for r in results}}))
    if any(
        r.verdict.lost or r.verdict.order_violations or r.verdict.counts_behind for r in results
    ):
        raise typer.Exit(1)


def render(results: list[ScenarioResult]) -> Table:
    table = Table(title="chaos")
    for title, _ in COLUMNS:
        table.add_column(title, justify="left" if title == "scenario" else "right")
    counted = any(result.verdict.counted for result in results)
    if counted:
        table.add_column("counts behind", justify="right")
        table.add_column("counts ahead", justify="right")
    for result in results:
        figures = {"name": result.name, **result.figures()}
        row = [str(figures[key]) for _, key in COLUMNS]
        if counted:
            row += [str(figures.get("counts_behind", "–")), str(figures.get("counts_ahead", "–"))]
        table.add_row(*row)
    return table
