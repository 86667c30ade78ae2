"""`pipeline new`: start a project of one's own."""

from __future__ import annotations

from pathlib import Path

import typer

from pipeline.cli.common import console, stdout
from pipeline.scaffold import package_name, write_project


def new(
    name: str = typer.Argument(..., help="The project's name, e.g. orders-app."),
    into: Path = typer.Option(
        Path("."), "--into", help="The folder to create the project in (default: here)."
    ),
) -> None:
    """Write a new project that works as written: topics, a processor, its test.

    Its pyproject.toml names the modules in [tool.pipeline], so every
    `pipeline` command run from the project folder finds them with no
    variable set. Refuses a folder that exists and is not empty.

    Example: pipeline new orders-app && cd orders-app && pip install -e '.[test]' && pytest
    """
    folder = write_project(name, into)
    package = package_name(name)
    console.print(
        f"created {folder}: {package}/topics.py, {package}/processors.py, "
        "tests/test_processors.py, pyproject.toml ([tool.pipeline]), README.md",
        markup=False,
        highlight=False,
    )
    stdout.print(
        f"next:\n  cd {folder}\n  pip install -e '.[test]' && pytest\n"
        "  pipeline infra up && pipeline topics apply && pipeline worker receipts",
        highlight=False,
        markup=False,
    )
