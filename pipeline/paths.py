"""Where the project's files and local state live, in a checkout and in an installed wheel.

The library's own files (the Kafka pom and broker template, the Kubernetes
templates) are package data beside the modules that read them. What
belongs to a project, its `infra/` (PostgreSQL migrations) and its `.state`
(local Kafka and PostgreSQL, table caches), is found in the project folder:
the source checkout this package runs from (an editable install), else the
working directory, where users run `pipeline` from. PIPELINE_INFRA_DIR and
PIPELINE_STATE_DIR move them, e.g. the state to a tmpfs for tests.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
_SOURCE_ROOT = PACKAGE_DIR.parent


def checkout_root() -> Path | None:
    """The source checkout the package runs from, or None when installed from a wheel."""
    if (_SOURCE_ROOT / "pyproject.toml").is_file() and (_SOURCE_ROOT / "infra").is_dir():
        return _SOURCE_ROOT
    return None


def project_dir() -> Path:
    """The checkout, or (installed) the working directory: where the application's modules are."""
    return checkout_root() or Path.cwd()


def infra_dir() -> Path:
    return Path(os.environ.get("PIPELINE_INFRA_DIR", project_dir() / "infra"))


def state_dir() -> Path:
    return Path(os.environ.get("PIPELINE_STATE_DIR", project_dir() / ".state"))


def kafka_state_dir() -> Path:
    return state_dir() / "kafka"


def postgres_state_dir() -> Path:
    return state_dir() / "postgres"


def registry_state_dir() -> Path:
    return state_dir() / "registry"


def cache_dir() -> Path:
    """Survives `infra down` and test runs: resolved classpaths live here."""
    return Path(os.environ.get("PIPELINE_CACHE_DIR", state_dir() / "cache"))
