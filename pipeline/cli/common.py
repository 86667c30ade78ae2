"""What every command shares: consoles, settings, the catalogue."""

from __future__ import annotations

import os

from rich.console import Console

from pipeline.catalogue import Catalogue, load_catalogue
from pipeline.paths import kafka_state_dir
from pipeline.settings import PipelineSettings, load_settings

console = Console(stderr=True)
stdout = Console()


def settings_for_cli(bootstrap: str | None = None) -> PipelineSettings:
    """Settings, with the local cluster's address when nothing else names one.

    So that `pipeline infra up` followed by `pipeline topics apply` just
    works, without exporting anything.
    """
    overrides = {}
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
    return load_settings(**overrides)


def local_database_url() -> str | None:
    from pipeline.localpg import LocalPostgres
    from pipeline.paths import postgres_state_dir

    state = LocalPostgres(postgres_state_dir()).load_state()
    return state.url if state else None


def local_bootstrap() -> str | None:
    from pipeline.localkafka import LocalKafka
    from pipeline.paths import cache_dir

    state = LocalKafka(kafka_state_dir(), cache_dir()).load_state()
    return state.bootstrap if state else None


def catalogue_for(settings: PipelineSettings) -> Catalogue:
    return load_catalogue(settings.catalogue_module, settings.topic_prefix)
