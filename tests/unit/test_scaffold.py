"""`pipeline new` writes a project that is valid as written, and its [tool.pipeline] is read.

The full run (installed in a venv, its test and a worker on a real broker)
is tests/integration/test_wheel.py; here the parts that need neither.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.scaffold import files_of, package_name, write_project
from pipeline.settings import load_settings


def test_every_file_of_a_new_project_is_valid_and_the_modules_are_named() -> None:
    files = files_of("orders-app")
    for path, text in files.items():
        if path.endswith(".py"):
            compile(text, path, "exec")
    project = tomllib.loads(files["pyproject.toml"])
    assert project["tool"]["pipeline"] == {
        "catalogue_module": "orders_app.topics",
        "processors_module": "orders_app.processors",
    }
    assert project["project"]["dependencies"] == ["event-pipeline"]
    assert "from pipeline import" in files["orders_app/processors.py"]


@pytest.mark.parametrize("name", ["1app", "my app", "", "app/../x", "-x"])
def test_a_name_that_is_no_package_is_refused_with_the_rule(name: str) -> None:
    with pytest.raises(ConfigError, match="start with a letter"):
        package_name(name)


def test_a_folder_with_files_is_never_written_over(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "mine.txt").write_text("keep")
    with pytest.raises(ConfigError, match="exists and is not empty"):
        write_project("app", tmp_path)
    assert (tmp_path / "app" / "mine.txt").read_text() == "keep"
    assert sorted(p.name for p in (tmp_path / "app").iterdir()) == ["mine.txt"]


def test_settings_come_from_the_projects_tool_pipeline_and_variables_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_project("orders-app", tmp_path)
    monkeypatch.chdir(tmp_path / "orders-app")
    for name in ("PIPELINE_CATALOGUE_MODULE", "PIPELINE_PROCESSORS_MODULE", "PIPELINE_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.catalogue_module == "orders_app.topics"
    assert settings.processors_module == "orders_app.processors"
    monkeypatch.setenv("PIPELINE_PROCESSORS_MODULE", "elsewhere")
    assert load_settings().processors_module == "elsewhere"


def test_a_pyproject_without_tool_pipeline_leaves_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "other"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PIPELINE_CATALOGUE_MODULE", raising=False)
    monkeypatch.delenv("PIPELINE_PROCESSORS_MODULE", raising=False)
    settings = load_settings()
    assert (settings.catalogue_module, settings.processors_module) == ("topics", "consumers")
