"""The public API is what `pipeline.__all__` says, each name documented and in the reference.

A name added to `__all__` without a docstring or without its `:::` entry in
docs/reference/api.md fails here, so the site cannot fall behind the code.
"""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import pipeline
from pipeline import local

API_PAGE = Path(__file__).resolve().parents[2] / "docs" / "reference" / "api.md"


def homes() -> dict[str, str]:
    return dict(pipeline._HOMES)


def test_all_and_the_homes_name_the_same_things() -> None:
    assert set(pipeline.__all__) == set(homes())
    assert len(pipeline.__all__) == len(set(pipeline.__all__))


@pytest.mark.parametrize("name", pipeline.__all__)
def test_each_public_name_resolves_to_its_home_and_says_why_it_exists(name: str) -> None:
    value = getattr(pipeline, name)
    assert value is getattr(importlib.import_module(homes()[name]), name)
    own = value.__dict__.get("__doc__") if inspect.isclass(value) else value.__doc__
    assert own and own.strip(), f"pipeline.{name} has no docstring of its own"


def test_each_public_name_is_in_the_api_reference_under_its_home() -> None:
    listed = set(re.findall(r"^::: ([\w.]+)$", API_PAGE.read_text(), flags=re.MULTILINE))
    expected = {f"{home}.{name}" for name, home in homes().items()}
    assert expected <= listed, f"missing from {API_PAGE.name}: {sorted(expected - listed)}"


def test_an_unknown_name_says_what_the_public_ones_are() -> None:
    with pytest.raises(AttributeError, match="the public names are BreakerPolicy"):
        _ = pipeline.NoSuchThing  # type: ignore[attr-defined]


def test_importing_the_package_loads_none_of_the_runtime() -> None:
    code = (
        "import sys, pipeline; print(sorted(m for m in sys.modules if m.startswith('pipeline.')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "pipeline.runtime" not in loaded and "pipeline.kafka" not in loaded, loaded


ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("package", ["topics", "consumers", "producers"])
def test_the_example_application_and_the_demo_use_only_the_public_api(package: str) -> None:
    """What users copy must not teach them the internal layout: `pipeline` for an
    application, `pipeline.local` for the demo's machinery (clusters, replica processes)."""
    internal = [
        f"{path.relative_to(ROOT)}: {target}"
        for path in sorted((ROOT / package).glob("*.py"))
        for target in re.findall(r"^\s*(?:from|import) (pipeline\.[\w.]+)", path.read_text(), re.M)
        if target != "pipeline.local"
    ]
    assert not internal, "\n".join(internal)


@pytest.mark.parametrize("name", local.__all__)
def test_each_name_of_the_local_harness_documents_itself_and_is_in_the_reference(
    name: str,
) -> None:
    value = getattr(local, name)
    if not isinstance(value, str):
        own = value.__dict__.get("__doc__") if inspect.isclass(value) else value.__doc__
        assert own and own.strip(), f"pipeline.local.{name} has no docstring of its own"
    assert f"`{name}`" in API_PAGE.read_text() or f"::: pipeline.local.{name}" in (
        API_PAGE.read_text()
    ), f"pipeline.local.{name} is not in {API_PAGE.name}"


def test_the_producer_documents_its_few_ways_to_publish_and_calls_the_rest_internal() -> None:
    """EventProducer's reference lists the members a user needs; every other public-looking
    member says it is internal, so nobody builds on it by accident."""
    from pipeline.publishing.producer import EventProducer

    listed = re.search(
        r"::: pipeline\.publishing\.producer\.EventProducer\n\s+options:\n\s+members: \[([^\]]*)\]",
        API_PAGE.read_text(),
    )
    assert listed is not None
    documented = {name.strip() for name in listed.group(1).split(",")}
    assert documented == {"publish", "publish_many", "submit_many", "start", "stop"}
    for name, member in vars(EventProducer).items():
        if name.startswith("_") or name in documented:
            continue
        doc = (member.fget if isinstance(member, property) else member).__doc__ or ""
        assert doc.startswith("Internal"), f"EventProducer.{name} is neither listed nor internal"
