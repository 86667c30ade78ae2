"""One asyncpg connection pool per process, with bounded waits.

Every partition worker of a replica shares the pool, so its size caps the
connections a replica opens however many partitions it owns. A caller that
cannot get a connection within the acquire timeout gets PoolExhaustedError:
through `ctx.call` that is a dependency failure, retried with backoff and
seen by the breaker, never a hang and never a dead letter.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from pipeline.errors import ConfigError, PipelineError
from pipeline.metric_names import MetricName
from pipeline.metrics import Metrics
from pipeline.settings import DatabaseTuning, PipelineSettings


class PoolExhaustedError(PipelineError):
    pass


class Database:
    def __init__(
        self,
        url: str,
        tuning: DatabaseTuning | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.url = url
        self.tuning = tuning or DatabaseTuning()
        self._metrics = metrics
        self._pool: asyncpg.Pool | None = None
        self.waiting = 0

    @classmethod
    def from_settings(cls, settings: PipelineSettings, metrics: Metrics | None = None) -> Database:
        if settings.database_url is None:
            raise ConfigError(
                "no database configured: set PIPELINE_DATABASE_URL "
                "(`pipeline db up` starts a local PostgreSQL and prints its URL)"
            )
        return cls(settings.database_url.get_secret_value(), settings.db, metrics)

    async def start(self) -> Database:
        tuning = self.tuning
        try:
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=min(tuning.pool_min_size, tuning.pool_max_size),
                max_size=tuning.pool_max_size,
                command_timeout=tuning.command_timeout_s,
            )
        except (OSError, asyncpg.PostgresError) as exc:
            raise PipelineError(
                f"cannot connect to PostgreSQL at {_redacted(self.url)}: {exc}. "
                "Is it running (`pipeline db status`) and is PIPELINE_DATABASE_URL right?"
            ) from exc
        if self._metrics is not None:
            self._metrics.gauge(
                "db_pool_connections",
                self._pool_gauge,
            )
        return self

    def _pool_gauge(self) -> dict[tuple[tuple[str, str], ...], float]:
        pool = self._pool
        if pool is None:
            return {}
        return {
            (("state", "idle"),): float(pool.get_idle_size()),
            (("state", "open"),): float(pool.get_size()),
            (("state", "waiting"),): float(self.waiting),
        }

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def __aenter__(self) -> Database:
        return await self.start()

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise PipelineError("the database pool is not started (call start() first)")
        return self._pool

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.pool.PoolConnectionProxy]:
        """A pooled connection, or PoolExhaustedError after the acquire timeout."""
        timeout = self.tuning.acquire_timeout_s
        started = time.monotonic()
        self.waiting += 1
        try:
            connection = await self.pool.acquire(timeout=timeout)
        except TimeoutError:
            self._count("db_pool_exhausted")
            raise PoolExhaustedError(
                f"no free PostgreSQL connection within {timeout:g}s "
                f"(pool of {self.tuning.pool_max_size}, all busy); raise "
                "PIPELINE_DB__POOL_MAX_SIZE, or find what holds connections"
            ) from None
        finally:
            self.waiting -= 1
        if self._metrics is not None:
            self._metrics.inc("db_acquire_seconds", time.monotonic() - started)
        try:
            yield connection
        finally:
            await self.pool.release(connection)

    async def execute(self, query: str, *args: Any) -> str:
        async with self.connection() as connection:
            return await connection.execute(query, *args)

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async with self.connection() as connection:
            return await connection.fetch(query, *args)

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        async with self.connection() as connection:
            return await connection.fetchrow(query, *args)

    def _count(self, name: MetricName) -> None:
        if self._metrics is not None:
            self._metrics.inc(name)


def _redacted(url: str) -> str:
    """The URL without its password, for error messages."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}@{host}"
