"""`pipeline worker`: one replica of a processor's consumer group."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import typer

from pipeline.cli.common import BootstrapOption, LogFormatOption, settings_for_cli
from pipeline.processor import load_processor
from pipeline.resilience.tasks import run_process
from pipeline.runtime import defaults
from pipeline.runtime.gc_tuning import tune_for_throughput
from pipeline.telemetry import tracing
from pipeline.telemetry.client_logs import setup_process_logging
from pipeline.telemetry.logs import set_process_fields


def worker(
    processor: str = typer.Argument(..., help="Processor name from the processors module."),
    replica_id: str = typer.Option(
        None, "--replica-id", help="Stable name of this replica (default: host-pid)."
    ),
    static_membership: bool = typer.Option(
        False,
        "--static-membership",
        help="Use group.instance.id from the replica id: a restart within the session "
        "timeout keeps its partitions (and a stop does not hand them over at once).",
    ),
    health_port: int = typer.Option(None, "--health-port", help="Serve /healthz /readyz /metrics."),
    health_host: str = typer.Option(
        "127.0.0.1", "--health-host", help="Address to serve them on (0.0.0.0 in containers)."
    ),
    drain_deadline: float = typer.Option(
        defaults.DRAIN_DEADLINE_S, help="Seconds to finish work in hand on stop."
    ),
    liveness_stall: float = typer.Option(
        defaults.LIVENESS_STALL_S,
        "--liveness-stall",
        help="/healthz fails when a partition with lag makes no progress for this long; an "
        "event loop that stands still this long ends the process (exit 5) after logging the "
        "records in hand and the stacks.",
    ),
    max_in_flight_records: int = typer.Option(
        defaults.MAX_IN_FLIGHT_RECORDS,
        help="Records held in memory by all partitions together (queued, being "
        "handled or awaiting acks); with --fetch-partition-bytes, what bounds a "
        "worker's memory.",
    ),
    fetch_partition_bytes: int = typer.Option(
        defaults.FETCH_PARTITION_BYTES,
        help="Largest fetch per partition (max.partition.fetch.bytes); at most one "
        "is buffered per partition, and one fetch response carries at most "
        f"{defaults.FETCH_RESPONSE_PARTITIONS} times this.",
    ),
    client: str = typer.Option(
        None,
        "--client",
        help="Kafka client: aiokafka or confluent (librdkafka); default PIPELINE_CLIENT, "
        "else aiokafka.",
    ),
    rebalance_protocol: str = typer.Option(
        None,
        "--rebalance-protocol",
        help="eager, cooperative (cooperative-sticky) or consumer (KIP-848); the last two "
        "need --client confluent. Default PIPELINE_REBALANCE_PROTOCOL, else eager.",
    ),
    join_gate: Path | None = typer.Option(
        None,
        "--join-gate",
        help="Join the group only once this file exists (at most 30 s after start-up): "
        "`pipeline scale` starts a step's replicas this way so that they join in one "
        "rebalance.",
    ),
    store_dir: Path | None = typer.Option(
        None,
        "--store-dir",
        help="Where the processor's stores keep their local copies (a folder per group); "
        "default: stores/ in the state folder. A replica restarted on the same folder reads "
        "only the changelog's tail; on an empty one, the whole changelog.",
    ),
    bootstrap: str | None = BootstrapOption,
    processors_module: str | None = typer.Option(
        None,
        "--processors-module",
        help="Module with PROCESSORS = {name: Processor}; default PIPELINE_PROCESSORS_MODULE, "
        "else processors_module in the project's [tool.pipeline], else consumers.",
    ),
    log_level: str = typer.Option(
        "INFO", "--log-level", help="DEBUG, INFO, WARNING or ERROR (the client's own: WARNING)."
    ),
    log_format: str | None = LogFormatOption,
) -> None:
    """Run one replica; start several (same processor) to form a consumer group.

    SIGTERM or Ctrl-C drains work in hand, commits and leaves the group.
    Exit status: 0 clean, 3 drain did not finish in time, 4 the worker failed, 5 its
    event loop stood still past --liveness-stall (a handler that never yields; restart it:
    the record in hand is counted towards its quarantine); killed by SIGVTALRM (26) the same,
    when the handler also held the GIL.

    Example: pipeline worker enrich_orders --replica-id r1 --health-port 8081

    Example: pipeline worker enrich_orders --client confluent --rebalance-protocol cooperative
    """
    from pipeline.kafka.connect import connect
    from pipeline.runtime.replicas import Replica, open_worker
    from pipeline.runtime.watchdog import LoopWatchdog
    from pipeline.runtime.worker import StopSwitch, WorkerOptions

    replica_id = replica_id or f"{socket.gethostname()}-{os.getpid()}"
    setup_process_logging(log_level, who=replica_id, log_format=log_format)
    set_process_fields(processor=processor, replica=replica_id)
    settings = settings_for_cli(bootstrap, client=client, rebalance_protocol=rebalance_protocol)
    found = load_processor(
        processors_module or settings.processors_module, processor, settings.topic_prefix
    )
    options = WorkerOptions(
        replica_id=replica_id,
        static_membership=static_membership,
        health_port=health_port,
        health_host=health_host,
        drain_deadline_s=drain_deadline,
        liveness_stall_s=liveness_stall,
        max_in_flight_records=max_in_flight_records,
        fetch_partition_bytes=fetch_partition_bytes,
        join_gate=join_gate,
        store_dir=store_dir,
    )

    tune_for_throughput()
    tracing.setup_tracing(f"pipeline-worker {processor}", settings.otlp_endpoint)

    async def run() -> int:
        switch = StopSwitch()
        # The runtime once it is opened; the watchdog guards the opening too (a table
        # catching up), when no record is in hand yet.
        opened: list[Replica] = []

        def in_hand() -> list[str]:
            return opened[0].in_hand() if opened else []

        def uncommitted() -> int:
            return opened[0].uncommitted() if opened else 0

        watchdog = LoopWatchdog(liveness_stall, in_hand, processor, uncommitted)
        with watchdog.watching(asyncio.get_running_loop()):
            runtime = await open_worker(settings, found, options, connect(settings), switch)
            if runtime is None:
                return switch.exit_code
            opened.append(runtime)
            return await runtime.run()

    try:
        code = run_process(run())
    finally:
        tracing.shutdown_tracing()
    raise typer.Exit(code)
