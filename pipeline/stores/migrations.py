"""Schema migrations: plain SQL files applied once each, in name order.

Several replicas may start at once and each may run `pipeline db migrate`;
an advisory lock makes the others wait and then find nothing left to do.
A file that was applied and later edited is reported, not re-run: a
migration's effect is in the database already, so a change needs a new file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from pipeline.errors import ConfigError, PipelineError

LOCK_ID = 0x70697065  # "pipe": one advisory lock for every migrator of this schema


@dataclass(frozen=True)
class Migration:
    version: str
    path: Path
    checksum: str


@dataclass
class MigrationReport:
    applied: list[str]
    already: list[str]
    edited_after_applying: list[str]


def discover(directory: Path) -> list[Migration]:
    if not directory.is_dir():
        raise ConfigError(
            f"migrations folder {directory} does not exist; set PIPELINE_DB__MIGRATIONS_DIR"
        )
    migrations = [
        Migration(path.stem, path, hashlib.sha256(path.read_bytes()).hexdigest())
        for path in sorted(directory.glob("*.sql"))
    ]
    if not migrations:
        raise ConfigError(f"no *.sql files in {directory}")
    return migrations


async def migrate(url: str, directory: Path, dry_run: bool = False) -> MigrationReport:
    migrations = discover(directory)
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("SELECT pg_advisory_lock($1)", LOCK_ID)
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY,"
            " checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {
            row["version"]: row["checksum"]
            for row in await connection.fetch("SELECT version, checksum FROM schema_migrations")
        }
        report = MigrationReport([], [], [])
        for migration in migrations:
            if migration.version in done:
                report.already.append(migration.version)
                if done[migration.version] != migration.checksum:
                    report.edited_after_applying.append(migration.version)
                continue
            if dry_run:
                report.applied.append(migration.version)
                continue
            try:
                async with connection.transaction():
                    await connection.execute(migration.path.read_text())
                    await connection.execute(
                        "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)",
                        migration.version,
                        migration.checksum,
                    )
            except asyncpg.PostgresError as exc:
                raise PipelineError(
                    f"migration {migration.path} failed and was rolled back: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            report.applied.append(migration.version)
        return report
    finally:
        await connection.close()
