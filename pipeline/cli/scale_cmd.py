"""`pipeline scale`: run a processor's replicas, as many as its lag and rates call for."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import typer

from pipeline.cli.common import (
    BootstrapOption,
    console,
    group_and_topic,
    parse_duration,
    settings_for_cli,
)
from pipeline.paths import state_dir
from pipeline.telemetry.client_logs import setup_process_logging


def scale(
    processor: str = typer.Argument(..., help="Processor name from the processors module."),
    min_replicas: int = typer.Option(1, "--min", help="Never fewer replicas."),
    max_replicas: int = typer.Option(
        8, "--max", help="Never more (nor, for a stream, more than its partitions)."
    ),
    target_drain: str = typer.Option("30s", "--target-drain", help="Clear a backlog within."),
    interval: str = typer.Option("5s", "--interval", help="How often to decide."),
    scale_down_window: str = typer.Option(
        "20s", "--scale-down-window", help="Scale down only to the window's highest need."
    ),
    caught_up_window: str = typer.Option(
        "5s",
        "--caught-up-window",
        help="Once the lag is gone, trust a lower need held this long (the long window "
        "again for a while if that proves premature). Equal to --scale-down-window: always "
        "wait the long window.",
    ),
    replica_rate: float = typer.Option(
        None, "--replica-rate", help="Events/s one replica handles, until one is measured."
    ),
    rebalance_stall: str = typer.Option(
        "3s",
        "--rebalance-stall",
        help="How long a scale step stops the group's output (an eager rebalance); a "
        "scale-up sizes for draining it too, so one step meets a burst. Less with "
        "--worker-arg=--rebalance-protocol --worker-arg=cooperative.",
    ),
    metrics_port: int = typer.Option(
        None, "--metrics-port", help="Serve lag and desired replicas on /metrics."
    ),
    metrics_host: str = typer.Option(
        "127.0.0.1", "--metrics-host", help="Address for /metrics (0.0.0.0 in containers)."
    ),
    recommend_only: bool = typer.Option(
        False,
        "--recommend-only",
        help="Start no processes: export the desired replicas (for KEDA's Prometheus scaler), "
        "counting the group's members as the replicas running.",
    ),
    status_file: Path = typer.Option(None, "--status-file", help="Append one JSON line a step."),
    log_dir: Path = typer.Option(None, "--log-dir", help="Worker logs (default .state/scale)."),
    worker_arg: list[str] = typer.Option(
        [], "--worker-arg", help="Passed to every `pipeline worker` (repeatable)."
    ),
    health_probe: bool = typer.Option(
        True,
        "--health-probe/--no-health-probe",
        help="Kill and replace a worker whose /healthz fails 3 times in a row (every 2 s, "
        "1 s timeout), as a Kubernetes liveness probe would; a worker whose loop stands "
        "still also exits on its own after --liveness-stall.",
    ),
    bootstrap: str = BootstrapOption,
) -> None:
    """Start and stop `pipeline worker` processes to match the scaling policy.

    A scale-up's workers get ready and then join the group together (one
    rebalance per step). Scale-down sends SIGTERM to the newest worker: it
    drains, commits and leaves the group. A worker that dies is replaced.
    Ctrl-C stops them all the same way.

    Example: pipeline scale enrich_orders --min 1 --max 8 --target-drain 30s

    Example: pipeline scale enrich_orders --worker-arg=--client --worker-arg=confluent

    Example: pipeline scale enrich_orders --worker-arg=--liveness-stall --worker-arg=20
    """
    from pipeline.scaling.policy import ScalingPolicy
    from pipeline.scaling.supervisor import Status, Supervisor

    setup_process_logging("INFO")
    settings = settings_for_cli(bootstrap)
    from pipeline.processor import load_processor

    group, topic = group_and_topic(settings, processor, None, None)
    queued = load_processor(settings.processors_module, processor, settings.topic_prefix)
    policy = ScalingPolicy(
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        target_drain_s=parse_duration(target_drain),
        scale_down_window_s=parse_duration(scale_down_window),
        caught_up_window_s=parse_duration(caught_up_window),
        initial_replica_rate=replica_rate,
        rebalance_stall_s=parse_duration(rebalance_stall),
    )
    env = {"PIPELINE_BOOTSTRAP_SERVERS": settings.bootstrap_servers}
    if settings.database_url is not None:
        env["PIPELINE_DATABASE_URL"] = settings.database_url.get_secret_value()

    def show(status: Status) -> None:
        console.print(status.line(), highlight=False, markup=False)

    supervisor = Supervisor(
        settings=settings,
        processor=processor,
        group=group,
        topic=topic,
        policy=policy,
        env=env,
        log_dir=log_dir or state_dir() / "scale" / processor,
        interval_s=parse_duration(interval),
        worker_args=tuple(worker_arg),
        status_file=status_file,
        on_status=show,
        manage_processes=not recommend_only,
        probe_health=health_probe,
        share=queued.delivery == "queue",
    )
    console.print(
        f"scaling {processor} (group {group}, topic {topic}) between {min_replicas} and "
        f"{max_replicas} replicas; worker logs in {supervisor.log_dir}"
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        server = None
        if metrics_port is not None:
            from pipeline.runtime.health import HealthServer

            server = HealthServer(supervisor, metrics_port, metrics_host)
            await server.start()
        try:
            await supervisor.run(stop)
        finally:
            if server is not None:
                await server.stop()

    asyncio.run(run())
    console.print("all workers stopped")
