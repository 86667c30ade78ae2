"""The Dockerfile's steps, run here without a container engine.

This machine has no Docker engine, and podman or buildah could not pull the
`python:3.11-slim` base image (no registry but the package indexes is
reachable). So the test reads the Dockerfile and does what its stages do:
builds the wheel with `python -m build`, resolves its dependencies as binary
wheels only (the final stage has no compiler), installs it into a fresh venv,
copies the application as the image does, and runs the entrypoint as the
image's non-root user (uid 10001) with its environment, against the broker.
What it cannot show: the base image itself, and a read-only root filesystem.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.paths import project_dir

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DOCKERFILE = project_dir() / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    starts = [i for i, (word, _) in enumerate(steps) if word == "FROM"]
    return steps[starts[-1] :]


def run(command: list[str], **kwargs: object) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}\n{done.stderr}"
    return str(done.stdout)


def test_the_image_is_multi_stage_non_root_and_has_no_compiler() -> None:
    steps = instructions()
    assert [w for w, _ in steps].count("FROM") == 2
    assert any(w == "FROM" and rest.endswith(" AS build") for w, rest in steps)
    final = final_stage()
    user = [rest for w, rest in final if w == "USER"]
    assert user and not user[-1].startswith(("0", "root"))
    runs = " ".join(rest for w, rest in final if w == "RUN")
    for compiler in ("gcc", "build-essential", "apt-get install", "python -m build"):
        assert compiler not in runs
    assert "--only-binary=:all:" in runs
    assert ("ENTRYPOINT", '["pipeline"]') in final


@pytest.fixture
def folder() -> Iterator[Path]:
    """Readable by the image's user (pytest's own temporary folders are root's alone)."""
    made = Path(tempfile.mkdtemp(prefix="pipeline-image-"))
    made.chmod(0o755)
    try:
        yield made
    finally:
        shutil.rmtree(made, ignore_errors=True)


def test_the_dockerfiles_steps_build_install_and_run_as_its_user(
    folder: Path, kafka_bootstrap: str
) -> None:
    tmp_path = folder
    # Stage "build": the wheel from the files the Dockerfile copies.
    source = tmp_path / "src"
    shutil.copytree(project_dir() / "pipeline", source / "pipeline",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(project_dir() / name, source / name)
    run([sys.executable, "-m", "build", "--wheel", "--outdir",
         str(tmp_path / "dist"), str(source)])  # fmt: skip
    [wheel] = (tmp_path / "dist").glob("event_pipeline-*.whl")
    # The final stage installs binary wheels only: every dependency must resolve as one.
    run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
         "--only-binary=:all:", str(wheel)])  # fmt: skip
    # The install itself, in a fresh venv (dependencies from this venv: no second download).
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
    (Path(purelib.strip()) / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheel)])
    # COPY topics, consumers to /app; ENV; USER 10001 with only the cache writable.
    app = tmp_path / "app"
    for module in ("topics", "consumers"):
        shutil.copytree(project_dir() / module, app / module,
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    env_lines = " ".join(rest for w, rest in final_stage() if w == "ENV")
    image_env = dict(re.findall(r"(\w+)=(\S+)", env_lines))
    cache = tmp_path / "cache"
    cache.mkdir()
    os.chown(cache, 10001, 10001)
    env = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        **image_env,
        "PIPELINE_STATE_DIR": str(cache),
        "PIPELINE_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "HOME": str(cache),
    }
    as_user = ["setpriv", "--reuid", "10001", "--regid", "10001", "--clear-groups"]
    entrypoint = [str(venv / "bin" / "pipeline")]
    help_text = run([*as_user, *entrypoint, "--help"], cwd=app, env=env)
    assert "worker" in help_text and "console" in help_text
    topics = run([*as_user, *entrypoint, "topics", "list"], cwd=app, env=env)
    assert "orders" in topics
