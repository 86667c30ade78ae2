"""The built wheel, installed in a fresh venv, runs an application that lives outside the checkout.

The venv gets the wheel and nothing of the checkout: its dependencies come
from the project's venv through a plain path entry (no download), which
does not run that venv's editable-install hook, and everything runs from a
folder outside the repository. So a file the package needs but does not
ship, or a path derived from the checkout, fails here.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from pipeline.dev.processes import free_ports
from pipeline.kafka.aiokafka.probe import run_sync
from pipeline.kafka.connect import connect
from pipeline.paths import project_dir
from pipeline.settings import PipelineSettings
from tests.support import read_all

pytestmark = [pytest.mark.integration, pytest.mark.slow]

APP_TOPICS = """
from pydantic import BaseModel

from pipeline.catalogue import Catalogue, TopicSpec


class Reading(BaseModel):
    sensor: str
    celsius: float


class Alert(BaseModel):
    sensor: str
    celsius: float


READINGS = TopicSpec("readings", Reading, "sensor", partitions=2, replication_factor=1)
ALERTS = TopicSpec("alerts", Alert, "sensor", partitions=2, replication_factor=1)
CATALOGUE = Catalogue([READINGS, ALERTS])
"""

APP_PROCESSORS = """
from pipeline.processor import Context, Processor

from site_topics import ALERTS, READINGS, Alert, Reading


async def too_hot(reading: Reading, ctx: Context) -> Alert | None:
    return Alert(sensor=reading.sensor, celsius=reading.celsius) if reading.celsius > 30 else None


PROCESSORS = {"alerts": Processor("alerts", READINGS, too_hot, outputs=(ALERTS,))}
"""


def clean_env(**more: str) -> dict[str, str]:
    """The environment without what would import the checkout (PYTHONPATH) or configure it."""
    kept = {
        k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("PIPELINE_")
    }
    return {**kept, **more}


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        command,
        cwd=cwd,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel built from this checkout installed; its bin folder."""
    folder = tmp_path_factory.mktemp("wheel")
    # Built from a copy: setuptools writes build/ and *.egg-info beside the sources.
    source = folder / "source"
    shutil.copytree(
        project_dir() / "pipeline",
        source / "pipeline",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(project_dir() / name, source / name)
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(folder), "."],
        cwd=source,
    )
    [wheel] = folder.glob("event_pipeline-*.whl")
    venv = folder / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=folder)
    python = venv / "bin" / "python"
    purelib = run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], folder
    )
    # The dependencies, from the project's venv; not its editable hook for `pipeline`.
    (Path(purelib.strip()) / "project_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    # --force-reinstall: the project venv's path entry shows its editable install's metadata.
    run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheel)],
        cwd=folder,
    )
    return venv / "bin"


def test_the_installed_package_is_the_wheel_and_ships_its_files(
    installed: Path, tmp_path: Path
) -> None:
    where = run(
        [
            str(installed / "python"),
            "-c",
            "import pipeline, pipeline.dev.kafka_jars as j, pipeline.scaling.k8s as k;"
            "print(pipeline.__file__); print(j.KAFKA_POM.is_file());"
            "print(sorted(p.name for p in k.TEMPLATES.iterdir()))",
        ],
        cwd=tmp_path,
    ).splitlines()
    assert where[0].startswith(str(installed.parent)), where[0]
    assert where[1] == "True"
    assert "worker-deployment.yaml" in where[2]
    help_text = run([str(installed / "pipeline"), "--help"], cwd=tmp_path)
    assert "worker" in help_text and "replay" in help_text


def test_a_worker_runs_an_application_outside_the_repository(
    installed: Path, tmp_path: Path, kafka_bootstrap: str, prefix: str
) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "site_topics.py").write_text(textwrap.dedent(APP_TOPICS))
    (app / "site_processors.py").write_text(textwrap.dedent(APP_PROCESSORS))
    env = clean_env(
        PIPELINE_BOOTSTRAP_SERVERS=kafka_bootstrap,
        PIPELINE_CATALOGUE_MODULE="site_topics",
        PIPELINE_PROCESSORS_MODULE="site_processors",
        PIPELINE_TOPIC_PREFIX=prefix,
        PIPELINE_STATE_DIR=str(tmp_path / "state"),
    )
    pipeline = str(installed / "pipeline")
    run([pipeline, "topics", "apply"], cwd=app, env=env)
    readings = app / "readings.jsonl"
    readings.write_text(
        "".join(
            json.dumps({"sensor": f"s{n % 7}", "celsius": 20 + n % 20}) + "\n" for n in range(200)
        )
    )
    run([pipeline, "produce", "--topic", "readings", "--file", str(readings)], cwd=app, env=env)
    port = free_ports(1)[0]
    worker = subprocess.Popen(
        [pipeline, "worker", "alerts", "--replica-id", "w1", "--health-port", str(port)],
        cwd=app,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    clients = connect(PipelineSettings(bootstrap_servers=kafka_bootstrap))
    expected = sum(1 for n in range(200) if 20 + n % 20 > 30)
    try:
        deadline = time.monotonic() + 60
        alerts: list[object] = []
        while time.monotonic() < deadline and len(alerts) < expected:
            assert worker.poll() is None, worker.communicate()[0].decode()
            alerts = run_sync(read_all(clients, prefix + "alerts"))
            time.sleep(0.5)
        assert len(alerts) == expected
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as answer:
            assert answer.status == 200
    finally:
        worker.send_signal(signal.SIGTERM)
        output = worker.communicate(timeout=60)[0].decode()
    assert worker.returncode == 0, output


@pytest.fixture
def prefix() -> str:
    return f"w{os.getpid()}x{time.monotonic_ns() % 10**6}."


def test_pipeline_new_makes_a_project_that_tests_and_runs_with_no_variable_set(
    installed: Path, tmp_path: Path, kafka_bootstrap: str, prefix: str
) -> None:
    """`pipeline new`, outside the checkout: its own test passes, and its processor runs on
    a real broker with every setting in its pyproject.toml ([tool.pipeline]), none in the
    environment."""
    pipeline, python = str(installed / "pipeline"), str(installed / "python")
    run([pipeline, "new", "demo-app"], cwd=tmp_path)
    project = tmp_path / "demo-app"
    run([python, "-m", "pip", "install", "-q", "-e", ".[test]"], cwd=project)
    tested = run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project)
    assert "1 passed" in tested
    # The cluster and a prefix of this test's own, where a user's `pipeline infra up` would
    # have put the local one: settings in the project file, not in variables.
    pyproject = project / "pyproject.toml"
    ours = f'bootstrap_servers = "{kafka_bootstrap}"\ntopic_prefix = "{prefix}"\n'
    pyproject.write_text(
        pyproject.read_text().replace("[tool.pipeline]\n", "[tool.pipeline]\n" + ours)
    )
    assert not [name for name in clean_env() if name.startswith("PIPELINE_")]
    run([pipeline, "topics", "apply"], cwd=project)
    orders = project / "orders.jsonl"
    orders.write_text(
        "".join(json.dumps({"order_id": f"o-{n}", "amount_cents": n}) + "\n" for n in range(50))
    )
    run([pipeline, "produce", "--topic", "orders", "--file", str(orders)], cwd=project)
    worker = subprocess.Popen(
        [pipeline, "worker", "receipts", "--replica-id", "demo-1"],
        cwd=project,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    clients = connect(PipelineSettings(bootstrap_servers=kafka_bootstrap))
    try:
        deadline = time.monotonic() + 60
        receipts: list[object] = []
        while time.monotonic() < deadline and len(receipts) < 50:
            assert worker.poll() is None, worker.communicate()[0].decode()
            receipts = run_sync(read_all(clients, prefix + "receipts"))
            time.sleep(0.5)
        assert len(receipts) == 50
    finally:
        worker.send_signal(signal.SIGTERM)
        output = worker.communicate(timeout=60)[0].decode()
    assert worker.returncode == 0, output


def test_pipeline_new_refuses_a_folder_that_is_not_empty(installed: Path, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    done = subprocess.run(
        [str(installed / "pipeline"), "new", "taken"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert "exists and is not empty" in done.stderr
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
