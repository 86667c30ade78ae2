"""What every command shares: consoles, settings, the catalogue."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from pipeline.catalogue import Catalogue, load_catalogue
from pipeline.errors import ConfigError, PipelineError
from pipeline.paths import kafka_state_dir
from pipeline.settings import PipelineSettings, load_settings

if TYPE_CHECKING:
    from pipeline.chaos.sweep import SweepReport

console = Console(stderr=True)
stdout = Console()

LogFormatOption = typer.Option(
    None,
    "--log-format",
    help="json (one object per line, with topic, partition, offset, event and trace ids) or "
    "text; default PIPELINE_LOG_FORMAT, else text on a terminal and json otherwise.",
)

BootstrapOption = typer.Option(
    None,
    "--bootstrap",
    help="Kafka host:port list; default PIPELINE_BOOTSTRAP_SERVERS, else the cluster "
    "`pipeline infra up` started.",
)


def settings_for_cli(bootstrap: str | None = None, **overrides: Any) -> PipelineSettings:
    """Settings, with the local cluster's address when nothing else names one.

    So that `pipeline infra up` followed by `pipeline topics apply` just
    works, without exporting anything. `overrides` (options of a command)
    win over the environment; None means "not given".
    """
    overrides = {name: value for name, value in overrides.items() if value is not None}
    if bootstrap:
        overrides["bootstrap_servers"] = bootstrap
    elif "PIPELINE_BOOTSTRAP_SERVERS" not in os.environ:
        local = local_bootstrap()
        if local:
            overrides["bootstrap_servers"] = local
    if "PIPELINE_DATABASE_URL" not in os.environ:
        local_db = local_database_url()
        if local_db:
            overrides["database_url"] = local_db
    if "PIPELINE_SCHEMA_REGISTRY__URL" not in os.environ and "schema_registry" not in overrides:
        registry = local_registry_url()
        if registry:
            overrides["schema_registry"] = {"url": registry}
    return load_settings(**overrides)


def local_registry_url() -> str | None:
    """The registry `pipeline infra up --registry` started, if it runs."""
    from pipeline.dev.registry import LocalRegistry
    from pipeline.paths import cache_dir, registry_state_dir

    return LocalRegistry(registry_state_dir(), cache_dir()).url


def local_database_url() -> str | None:
    from pipeline.dev.localpg import LocalPostgres
    from pipeline.paths import postgres_state_dir

    state = LocalPostgres(postgres_state_dir()).load_state()
    return state.url if state else None


def local_bootstrap() -> str | None:
    from pipeline.dev.localkafka import LocalKafka
    from pipeline.paths import cache_dir

    state = LocalKafka(kafka_state_dir(), cache_dir()).load_state()
    return state.bootstrap if state else None


def catalogue_for(settings: PipelineSettings) -> Catalogue:
    return load_catalogue(settings.catalogue_module, settings.topic_prefix)


def parse_duration(text: str) -> float:
    """Seconds from `30`, `30s`, `2m` or `1h`, with an error that shows the forms."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    raw = text.strip().lower()
    scale = units.get(raw[-1:])
    number = raw[:-1] if scale else raw
    try:
        value = float(number) * (scale or 1.0)
    except ValueError:
        raise ConfigError(f"{text!r} is not a duration; write e.g. 30, 30s, 2m or 1h") from None
    if value <= 0:
        raise ConfigError(f"{text!r}: a duration must be positive")
    return value


def group_and_topic(
    settings: PipelineSettings, processor: str | None, group: str | None, topic: str | None
) -> tuple[str, str]:
    """A processor names both; otherwise the group is given and its topic found or given."""
    if processor:
        from pipeline.processor import load_processor

        found = load_processor(settings.processors_module, processor, settings.topic_prefix)
        return group or found.group_id, topic or found.source.name
    if not group:
        raise ConfigError("name a --group (or a --processor, whose group and topic are used)")
    if topic:
        return group, topic
    from pipeline.kafka.aiokafka.probe import run_sync
    from pipeline.kafka.connect import connect
    from pipeline.reading.offsets import group_commits, share_group_backlog

    topics = {tp.topic for tp in run_sync(group_commits(connect(settings), group))}
    if not topics:  # a share group commits nothing: the topics it holds state for
        topics = {tp.topic for tp in run_sync(share_group_backlog(connect(settings), group))}
    if len(topics) != 1:
        raise ConfigError(
            f"group {group!r} has committed offsets on {len(topics)} topics "
            f"({', '.join(sorted(topics)) or 'none yet'}); name one with --topic"
        )
    return group, topics.pop()


def cluster_topic(settings: PipelineSettings, name: str) -> str:
    """The name a topic has on the cluster: a catalogue name (or its .dlq) gets the prefix.

    So `--topic orders.dlq` means the same topic whatever PIPELINE_TOPIC_PREFIX
    is; a name the catalogue does not know is taken as it is.
    """
    from pipeline.errors import UnknownTopicError

    try:
        return catalogue_for(settings).get(name).name
    except UnknownTopicError:
        return name


def report_sweep(report: SweepReport) -> None:
    """What a sweep undid and what it could not, on stderr; a problem is a warning, not a stop."""
    for line in report.done:
        console.print(f"[yellow]cleaned up after a killed chaos run[/]: {line}")
    for line in report.problems:
        console.print(f"[red]could not clean up after a killed chaos run[/]: {line}")


def queue_groups(settings: PipelineSettings) -> dict[str, str]:
    """The share groups of the processors module's queue-mode processors, with their topics:
    what the console watches besides the consumer groups the brokers list. None without a
    processors module (said, not an error: the console shows the rest)."""
    from pipeline.processor import load_processors

    try:
        processors = load_processors(settings.processors_module, settings.topic_prefix)
    except PipelineError as exc:
        console.print(f"[yellow]no processors module[/] ({exc}); share groups not shown")
        return {}
    return {p.group_id: p.source.name for p in processors.values() if p.delivery == "queue"}
