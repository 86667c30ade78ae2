"""Where the project's files and local state live.

The state folder (data and logs of local services, cached classpaths) sits
in the checkout by default so nothing leaks into the user's home, and can be
moved with PIPELINE_STATE_DIR, e.g. to a tmpfs for tests.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def infra_dir() -> Path:
    return Path(os.environ.get("PIPELINE_INFRA_DIR", PROJECT_ROOT / "infra"))


def state_dir() -> Path:
    return Path(os.environ.get("PIPELINE_STATE_DIR", PROJECT_ROOT / ".state"))


def kafka_state_dir() -> Path:
    return state_dir() / "kafka"


def postgres_state_dir() -> Path:
    return state_dir() / "postgres"


def cache_dir() -> Path:
    """Survives `infra down` and test runs: resolved classpaths live here."""
    return Path(os.environ.get("PIPELINE_CACHE_DIR", state_dir() / "cache"))
