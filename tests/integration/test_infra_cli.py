"""`pipeline infra` starts, reports and stops a private local cluster."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pipeline.dev.processes import pid_alive
from pipeline.kafka.aiokafka.probe import live_broker_count
from pipeline.paths import cache_dir
from tests.support import run_cli

pytestmark = pytest.mark.integration


def test_up_is_idempotent_status_reports_and_down_stops(tmp_path: Path) -> None:
    """Also `up --registry` on the running cluster: `schemas check` finds the registry with no
    variable set, and `down` stops it."""
    env = {
        "PIPELINE_STATE_DIR": str(tmp_path),
        "PIPELINE_CACHE_DIR": str(cache_dir()),  # the resolved jars and the built registry
        "PIPELINE_CATALOGUE_MODULE": "tests.integration.catalogues.avro_v1",
        "PIPELINE_TOPIC_PREFIX": "infra-registry.",
    }
    assert "PIPELINE_SCHEMA_REGISTRY__URL" not in os.environ
    first = run_cli("infra", "up", env=env)
    try:
        assert first.returncode == 0, first.stderr
        bootstrap = first.stdout.strip()
        assert bootstrap.startswith("127.0.0.1:")
        assert live_broker_count(bootstrap) == 1

        second = run_cli("infra", "up", "--registry", env=env)
        assert second.returncode == 0, second.stderr
        assert second.stdout.strip() == bootstrap
        assert "schema registry is up" in second.stderr
        registry_pid = int((tmp_path / "registry" / "registry.pid").read_text())
        checked = run_cli("schemas", "check", env=env)
        assert checked.returncode == 0, checked.stderr
        assert "infra-registry.accounts-value" in checked.stdout and "register" in checked.stdout

        status = run_cli("infra", "status", env=env)
        assert status.returncode == 0
        assert "running" in status.stdout
        assert run_cli("infra", "bootstrap", env=env).stdout.strip() == bootstrap

        other_size = run_cli("infra", "up", "--brokers", "3", env=env)
        assert other_size.returncode == 2
        assert "run `pipeline infra down` first" in " ".join(other_size.stderr.split())
    finally:
        down = run_cli("infra", "down", env=env)
    assert down.returncode == 0
    assert "Kafka stopped" in down.stderr
    assert "schema registry stopped" in down.stderr
    assert not pid_alive(registry_pid)
    after = run_cli("infra", "status", env=env)
    assert after.returncode == 1
    assert "no local cluster" in after.stderr


def test_missing_java_is_explained(tmp_path: Path) -> None:
    bare_path = tmp_path / "bin"
    bare_path.mkdir()
    env = {
        "PIPELINE_STATE_DIR": str(tmp_path / "state"),
        "PATH": str(bare_path),
        "JAVA_HOME": "",
    }
    result = run_cli("infra", "up", env=env)
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert "Java was not found" in message
    assert "apt-get install openjdk-17-jre-headless" in message


def test_broker_that_cannot_start_shows_its_log(tmp_path: Path) -> None:
    """A broker port already taken: `up` fails with the log tail, leaves nothing running."""
    fake_java = tmp_path / "bin" / "java"
    fake_java.parent.mkdir()
    real_java = shutil.which("java")
    assert real_java
    # Formatting works; the broker itself exits at once with a message.
    fake_java.write_text(
        "#!/bin/sh\n"
        'for arg in "$@"; do if [ "$arg" = kafka.Kafka ]; then '
        'echo "FATAL simulated broker failure" >&2; exit 1; fi; done\n'
        f'exec {real_java} "$@"\n'
    )
    fake_java.chmod(0o755)
    env = {
        "PIPELINE_STATE_DIR": str(tmp_path / "state"),
        "JAVA_HOME": str(tmp_path),
        "PATH": os.environ["PATH"],
    }
    result = run_cli("infra", "up", "--timeout", "60", env=env)
    assert result.returncode == 2
    message = result.stderr
    assert "a Kafka node exited during start-up" in " ".join(message.split())
    assert "FATAL simulated broker failure" in message
    assert run_cli("infra", "status", env=env).returncode == 1
