"""Every command says what it does, with an example, and every option says what it is for."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer

from pipeline.cli import app


# Typer carries its own copy of click's classes; what a command has is checked, not its type.
def commands(group: Any, path: str = "pipeline") -> Iterator[tuple[str, Any]]:
    if hasattr(group, "commands"):
        for name, command in group.commands.items():
            yield from commands(command, f"{path} {name}")
    else:
        yield path, group


ALL = list(commands(typer.main.get_command(app)))


def test_the_cli_has_its_commands() -> None:
    names = {path for path, _ in ALL}
    assert {"pipeline worker", "pipeline dlq inspect", "pipeline gateway"} <= names


@pytest.mark.parametrize(("path", "command"), ALL, ids=[path for path, _ in ALL])
def test_each_command_has_an_example_and_each_option_a_help_text(path: str, command: Any) -> None:
    assert command.help and "Example" in command.help, f"{path} has no example in its --help"
    undocumented = [
        "/".join(param.opts)
        for param in command.params
        if param.param_type_name == "option" and not param.hidden and not (param.help or "").strip()
    ]
    assert not undocumented, f"{path}: options without help text: {', '.join(undocumented)}"


def test_an_option_has_one_name_per_meaning() -> None:
    for path, command in ALL:
        for param in command.params:
            if param.param_type_name == "option":
                long_names = [opt for opt in param.opts if opt.startswith("--")]
                assert len(long_names) == 1, f"{path}: {param.opts} are one option under two names"
