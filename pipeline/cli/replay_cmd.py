"""`pipeline replay`: re-run a time or offset range of a topic, beside the live group."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from pipeline.cli.common import BootstrapOption, console, settings_for_cli, stdout
from pipeline.errors import ConfigError, PipelineError

if TYPE_CHECKING:  # the CLI starts every command's module; import these only when replaying
    from pipeline.kafka.port import Clients
    from pipeline.ops.replay import ReplayPlan
    from pipeline.processor import Processor
    from pipeline.settings import PipelineSettings


def replay(
    topic: str = typer.Option(None, "--topic", help="Topic to replay (default: the processor's)."),
    start: str = typer.Option(
        None, "--from", help="ISO time (2026-11-01T10:00Z) or offset; default: the log start."
    ),
    end: str = typer.Option("now", "--to", help="ISO time, offset (exclusive) or now."),
    processor: str = typer.Option(None, "--processor", help="Run this processor's handler."),
    into_topic: str = typer.Option(None, "--into-topic", help="Copy the records here instead."),
    name: str = typer.Option(
        None, "--name", help="Replay name; its group is replay.<name>. Same name = resume."
    ),
    rate: float = typer.Option(None, "--rate", help="At most this many events/s."),
    partitions: str = typer.Option(None, "--partitions", help="Only these, e.g. 0,3,7."),
    bootstrap: str = BootstrapOption,
) -> None:
    """Replay [--from, --to) of a topic through a processor, or copy it into another topic.

    Runs in its own consumer group (replay.<name>), never the live one; stops
    at each partition's end; Ctrl-C stops it cleanly and the same command
    resumes from its committed progress over the same range. Outputs and sink
    writes carry the ids the live run gave them, so a replay over processed
    data changes nothing it should not.

    Example: pipeline replay --processor order_stats --from 2026-11-27T00:00Z --rate 2000
    """
    from pipeline.kafka.connect import connect
    from pipeline.ops.offset_ranges import parse_partitions, parse_position, resolve_ranges
    from pipeline.ops.replay import ReplayPlan, check_target, default_name, resume_state
    from pipeline.processor import load_processor
    from pipeline.telemetry.client_logs import setup_process_logging

    setup_process_logging("WARNING")
    settings = settings_for_cli(bootstrap)
    found = None
    if processor:
        found = load_processor(settings.processors_module, processor, settings.topic_prefix)
        if topic and topic != found.source.name:
            raise ConfigError(
                f"processor {processor!r} reads {found.source.name!r}, not {topic!r}; "
                "leave out --topic or use --into-topic to copy another topic"
            )
        topic = found.source.name
    if not topic:
        raise ConfigError("name the --topic to replay (or a --processor, whose topic is used)")
    replay_name = name or default_name(processor or f"copy-{into_topic}", topic, start, end)
    group = "replay." + replay_name
    if rate is not None and rate <= 0:
        raise ConfigError("--rate must be positive")

    clients = connect(settings)
    stored, committed = asyncio.run(resume_state(clients, group, topic))
    if stored is not None:
        ranges = stored
        console.print(f"resuming replay {replay_name}: its range is the one stored at its start")
    else:
        resolved = asyncio.run(
            resolve_ranges(
                clients,
                topic,
                parse_position(start, "--from"),
                parse_position(end, "--to"),
                parse_partitions(partitions),
            )
        )
        ranges = {r.partition: r for r in resolved}
    plan = ReplayPlan(replay_name, topic, ranges, rate, resume_from=committed)
    check_target(plan, into_topic, processor)
    console.print(
        f"replay {replay_name} (group {group}): {plan.total:,} records of {topic} on "
        f"{sum(1 for r in ranges.values() if r.size)} partitions"
        + (f", at most {rate:,.0f}/s" if rate else "")
    )
    started = time.monotonic()
    outcome = asyncio.run(_run(settings, clients, plan, found, into_topic, committed))
    elapsed = time.monotonic() - started
    report = Table(title=f"replay {replay_name}")
    for column in ("read", "processed", "dead-lettered", "outside the range", "time"):
        report.add_column(column, justify="right")
    report.add_row(
        f"{outcome['read']:,}",
        f"{outcome['processed']:,}",
        f"{outcome['dead_lettered']:,}",
        f"{outcome['skipped']:,}",
        f"{elapsed:,.1f}s",
    )
    stdout.print(report)
    if not outcome["finished"]:
        console.print(
            "[yellow]stopped before the end[/]; run the same command again to resume "
            f"(progress is committed in group {group})"
        )
        sys.exit(130 if outcome["interrupted"] else 1)
    console.print("[green]replay finished[/]")


async def _run(
    settings: PipelineSettings,
    clients: Clients,
    plan: ReplayPlan,
    found: Processor[Any] | None,
    into_topic: str | None,
    committed: dict[int, int],
) -> dict[str, int | bool]:
    from pipeline.ops.replay import ReplayProgress, copy_range

    progress = ReplayProgress(plan, dict(committed))
    stop = asyncio.Event()
    interrupted = []

    def on_signal() -> None:
        interrupted.append(True)
        stop.set()

    loop = asyncio.get_running_loop()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        total = bar.add_task("all", total=plan.total)
        tasks = {
            p: bar.add_task(f"partition {p}", total=r.size)
            for p, r in sorted(plan.ranges.items())
            if r.size
        }

        def refresh(done: dict[int, int]) -> None:
            progress.done.update(done)
            for partition, task in tasks.items():
                bar.update(task, completed=progress.advanced(partition))
            bar.update(total, completed=sum(progress.advanced(p) for p in tasks))

        if into_topic:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, on_signal)
            await copy_range(
                settings, clients, plan, into_topic, progress, stop, on_batch=lambda: refresh({})
            )
            return {
                "read": progress.read,
                "processed": progress.read,
                "dead_lettered": 0,
                "skipped": progress.beyond_range,
                "finished": progress.finished,
                "interrupted": bool(interrupted),
            }
        from pipeline.runtime.worker import Runtime, StopSwitch, WorkerOptions

        assert found is not None
        switch = StopSwitch()
        runtime = await Runtime.open(
            settings,
            found,
            WorkerOptions(replica_id=f"replay-{plan.name}"),
            replay=plan,
            clients=clients,
            switch=switch,
        )
        if runtime is None:
            if switch.failure:
                raise PipelineError(f"the replay stopped before it read a record: {switch.failure}")
            return {
                "read": 0,
                "processed": 0,
                "dead_lettered": 0,
                "skipped": 0,
                "finished": False,
                "interrupted": switch.signalled,
            }
        running = asyncio.ensure_future(runtime.run())
        while not running.done():
            await asyncio.wait([running], timeout=0.5)
            assert runtime.replay is not None
            refresh(runtime.replay.committed_offsets)
        code = running.result()
        assert runtime.replay is not None
        refresh(runtime.replay.committed_offsets)
        metrics = runtime.metrics
        return {
            "read": int(metrics.total("consumed")),
            "processed": int(metrics.total("processed")),
            "dead_lettered": int(metrics.total("dead_lettered")),
            "skipped": int(metrics.total("replay_outside_range")),
            "finished": progress.finished and code == 0,
            "interrupted": runtime.signalled,
        }
