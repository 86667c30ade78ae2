"""What one replica shares among its partition workers: the pool and the tables.

Opened before the replica joins its consumer group, so the first event it
handles already sees a connected pool and tables caught up with their
topics; closed after it left the group.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel

from pipeline.errors import ConfigError
from pipeline.kafka.port import Clients
from pipeline.metrics import Metrics
from pipeline.paths import state_dir
from pipeline.resilience.breaker import BreakerRegistry
from pipeline.settings import PipelineSettings
from pipeline.stores.cache import LocalCache
from pipeline.stores.db import Database
from pipeline.stores.table import Table, TableFollower, TableView

TABLE_CATCH_UP_TIMEOUT_S = 600.0


@dataclass
class Services:
    processor: str
    database: Database | None = None
    tables: dict[str, TableView[BaseModel]] = field(default_factory=dict)
    followers: list[TableFollower] = field(default_factory=list)

    @property
    def db(self) -> Database:
        if self.database is None:
            raise ConfigError(
                f"processor {self.processor!r} uses the database but does not declare database=True"
            )
        return self.database

    def table(self, name: str) -> TableView[BaseModel]:
        try:
            return self.tables[name]
        except KeyError:
            raise ConfigError(
                f"processor {self.processor!r} has no table {name!r}; "
                f"declared: {', '.join(sorted(self.tables)) or 'none'}"
            ) from None

    async def close(self) -> None:
        for follower in self.followers:
            await follower.stop()
        if self.database is not None:
            await self.database.close()


def default_cache_root() -> Path:
    return state_dir() / "caches"


def cache_path(root: Path, group: str, replica_id: str, name: str) -> Path:
    """One directory per processor (group), replica and cache: replicas never share one."""
    safe = [re.sub(r"[^A-Za-z0-9._-]", "_", part) for part in (group, replica_id, name)]
    return root.joinpath(*safe)


async def open_services(
    settings: PipelineSettings,
    clients: Clients,
    processor_name: str,
    group: str,
    replica_id: str,
    tables: tuple[Table[BaseModel], ...],
    use_database: bool,
    metrics: Metrics,
    breakers: BreakerRegistry,
    on_failure: Callable[[str], None],
    cache_root: Path,
) -> Services:
    services = Services(processor_name)
    try:
        if use_database:
            services.database = await Database.from_settings(settings, metrics).start()
        for table in tables:
            cache = LocalCache(
                cache_path(cache_root, group, replica_id, table.name),
                name=table.name,
                max_entries=table.max_entries,
                metrics=metrics,
            )
            follower = TableFollower(table, clients, cache, metrics, on_failure)
            services.followers.append(follower)
            breaker = breakers.get(table.loader_dependency)
            services.tables[table.name] = TableView(table, cache, breaker, services)
            await follower.start()
        for follower in services.followers:
            await follower.wait_caught_up(TABLE_CATCH_UP_TIMEOUT_S)
    except BaseException:
        await services.close()
        raise
    return services
