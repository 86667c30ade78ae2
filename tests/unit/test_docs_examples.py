"""The documentation's examples run: the getting-started page includes these files as they are.

A page that shows code nobody ran drifts from the API; here the example's own
test runs, and the page is checked to include the file rather than a copy.
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
import yaml

DOCS = Path(__file__).resolve().parents[2] / "docs"


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docs_example_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def included_examples() -> list[Path]:
    """Every file a page pulls in with the snippets syntax (--8<-- "docs/examples/...")."""
    found = set()
    for page in DOCS.rglob("*.md"):
        for name in re.findall(r'--8<-- "(docs/examples/[\w./-]+\.py)"', page.read_text()):
            found.add(DOCS.parent / name)
    return sorted(found)


def test_the_getting_started_page_includes_its_example_from_a_file() -> None:
    assert DOCS / "examples" / "first_processor.py" in included_examples()


@pytest.mark.parametrize("path", included_examples(), ids=lambda p: p.name)
async def test_each_included_example_passes_its_own_tests(path: Path) -> None:
    module = load(path)
    tests = [value for name, value in vars(module).items() if name.startswith("test_")]
    assert tests, f"{path.name} has no test_ function"
    for test in tests:
        await test()


def test_the_example_uses_only_the_public_api() -> None:
    for path in included_examples():
        imports = re.findall(r"^from (pipeline[\w.]*) import", path.read_text(), re.MULTILINE)
        assert set(imports) <= {"pipeline"}, f"{path.name} imports from {imports}"


README = DOCS.parent / "README.md"


def test_the_readme_is_a_landing_page_and_its_example_runs(tmp_path: Path) -> None:
    text = README.read_text()
    assert len(text.splitlines()) < 300
    example = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    assert example is not None, "the README shows no Python example"
    path = tmp_path / "readme_example.py"
    path.write_text(example.group(1))
    assert set(re.findall(r"^from (pipeline[\w.]*) import", example.group(1), re.M)) == {"pipeline"}
    module = load(path)
    tests = [value for name, value in vars(module).items() if name.startswith("test_")]
    assert tests
    for test in tests:
        asyncio.run(test())


def test_every_alert_links_to_its_own_runbook_section() -> None:
    """An alert that pages someone must say where to start; a renamed heading breaks the link."""
    root = Path(__file__).resolve().parents[2]
    rules = yaml.safe_load((root / "infra/prometheus/alerts.yml").read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]
    runbook = (root / "docs/operations/runbooks.md").read_text()
    anchors = {heading.lower() for heading in re.findall(r"^## (\w+)$", runbook, re.M)}
    assert alerts
    for alert in alerts:
        url = alert["annotations"].get("runbook_url", "")
        assert url == f"docs/operations/runbooks.md#{alert['alert'].lower()}", alert["alert"]
        assert alert["alert"].lower() in anchors, f"no section for {alert['alert']}"
    assert len(anchors) == len(alerts), "a runbook section names no alert"
