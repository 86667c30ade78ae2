"""A Confluent-compatible schema registry on this machine, built from Maven Central.

Topics in Avro, Protobuf or JSON Schema carry a schema id that only a
registry can resolve, so tests, the demo and `pipeline infra up --registry`
need a real one, and there is no Docker engine here. Apicurio Registry
speaks Confluent's API under /apis/ccompat/v7 and is published on Maven
Central; files/registry/pom.xml has Quarkus package it into a runnable jar
(about 130 MB of jars, 15 s with a warm Maven cache, once per pom). It runs
with in-memory storage: schemas live as long as the process, which is what
a test or a local run wants.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline import paths
from pipeline.dev.kafka_jars import java_executable, maven_executable
from pipeline.dev.processes import free_ports, log_tail, pid_alive, wait_dead
from pipeline.errors import InfraError

REGISTRY_PROJECT = Path(__file__).parent / "files" / "registry"
CCOMPAT_PATH = "/apis/ccompat/v7"
"""Where Apicurio serves Confluent's API: what a client's `url` must name."""
RUNNER_JAR = "schema-registry-1-runner.jar"
READY_TIMEOUT_S = 120.0


def _project_files() -> list[Path]:
    return sorted(path for path in REGISTRY_PROJECT.rglob("*") if path.is_file())


def build_registry(cache_dir: Path, progress: Callable[[str], None] | None = None) -> Path:
    """The registry's runner jar, built by Maven once per version of its project files."""
    digest = hashlib.sha256()
    for path in _project_files():
        digest.update(path.relative_to(REGISTRY_PROJECT).as_posix().encode())
        digest.update(path.read_bytes())
    home = cache_dir / f"schema-registry-{digest.hexdigest()[:16]}"
    runner = home / "target" / RUNNER_JAR
    if runner.exists() and (home / "target" / "lib").is_dir():
        return runner
    if progress:
        progress("building the schema registry with Maven (first run downloads ~130 MB)")
    cache_dir.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix="schema-registry-build-", dir=cache_dir))
    try:
        shutil.copytree(REGISTRY_PROJECT, building, dirs_exist_ok=True)
        result = subprocess.run(
            [maven_executable(), "-q", "-B", "-f", str(building / "pom.xml"), "package"],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0 or not (building / "target" / RUNNER_JAR).exists():
            raise InfraError(
                f"Maven could not build the schema registry (exit {result.returncode}); "
                "check that Maven Central is reachable.\n" + (result.stdout + result.stderr)[-3000:]
            )
        shutil.rmtree(home, ignore_errors=True)
        building.rename(home)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return runner


class LocalRegistry:
    """One registry process, its files (log, pid, Java's temporary files) in `folder`."""

    def __init__(self, folder: Path, cache_dir: Path, heap_mb: int = 256) -> None:
        self.folder = folder
        self.cache_dir = cache_dir
        self.heap_mb = heap_mb
        self.log_path = folder / "registry.log"
        self.pid_path = folder / "registry.pid"
        self.port_path = folder / "registry.port"

    @property
    def pid(self) -> int | None:
        try:
            return int(self.pid_path.read_text())
        except (FileNotFoundError, ValueError):
            return None

    @property
    def url(self) -> str | None:
        """The Confluent-compatible URL of the running registry, or None."""
        if not pid_alive(self.pid):
            return None
        try:
            port = int(self.port_path.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return f"http://127.0.0.1:{port}{CCOMPAT_PATH}"

    def up(self, progress: Callable[[str], None] | None = None) -> str:
        """Start the registry (or confirm the running one) and return its URL once ready."""
        running = self.url
        if running is not None:
            return running
        runner = build_registry(self.cache_dir, progress)
        port = free_ports(1)[0]
        scratch = self.folder / "tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            process = subprocess.Popen(
                [
                    java_executable(),
                    f"-Xmx{self.heap_mb}m",
                    f"-Djava.io.tmpdir={scratch}",
                    f"-Dvertx.cacheDirBase={scratch}",
                    f"-Dquarkus.http.port={port}",
                    "-Dquarkus.http.host=127.0.0.1",
                    "-jar",
                    str(runner),
                ],
                cwd=self.folder,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid_path.write_text(str(process.pid))
        self.port_path.write_text(str(port))
        if progress:
            progress(f"waiting for the schema registry on port {port}")
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not _ready(port):
            if process.poll() is not None or time.monotonic() > deadline:
                self.down()
                raise InfraError(
                    f"the schema registry did not become ready on port {port} "
                    f"(log {self.log_path}):\n{log_tail(self.log_path)}"
                )
            time.sleep(0.2)
        return f"http://127.0.0.1:{port}{CCOMPAT_PATH}"

    def down(self) -> None:
        pid = self.pid
        if pid is not None and pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
            if not wait_dead(pid, 30):
                os.kill(pid, signal.SIGKILL)
                wait_dead(pid, 10)
        self.pid_path.unlink(missing_ok=True)
        self.port_path.unlink(missing_ok=True)


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=2) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def ephemeral_registry(progress: Callable[[str], None] | None = None) -> Iterator[str]:
    """A registry URL for one run: SCHEMA_REGISTRY_URL if set, else a private registry."""
    existing = os.environ.get("SCHEMA_REGISTRY_URL")
    if existing:
        yield existing
        return
    with tempfile.TemporaryDirectory(prefix="pipeline-registry-") as folder:
        registry = LocalRegistry(Path(folder), paths.cache_dir())
        try:
            yield registry.up(progress)
        finally:
            registry.down()
