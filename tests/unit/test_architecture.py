"""The shape the design promises, checked from the source: no import cycles, one Kafka door.

The import graph is read with `ast`, not by importing, and counts every
import: inside functions and under TYPE_CHECKING too. A cycle that only
imports fine thanks to such a deferral is still two modules that cannot be
understood (or moved) one without the other.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "pipeline"
APPLICATION = ("producers", "consumers", "topics")
KAFKA_CLIENTS = ("aiokafka", "confluent_kafka", "kafka")
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources(*packages: str) -> list[Path]:
    return sorted(p for package in packages for p in (ROOT / package).rglob("*.py"))


def imports(path: Path, top_level_only: bool) -> set[str]:
    """Modules `path` imports (at module level only, when asked: what runs on import)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.If) and top_level_only:
            continue  # `if TYPE_CHECKING:` blocks do not run
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def import_graph(*packages: str) -> dict[str, set[str]]:
    modules = {module_name(p): p for p in sources(*packages)}
    return {
        name: {t for t in imports(path, top_level_only=False) if t in modules and t != name}
        for name, path in modules.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_library_has_no_import_cycle() -> None:
    graph = import_graph("pipeline")
    assert len(graph) > 50
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " → ".join(cycle or [])


def test_the_application_has_no_import_cycle() -> None:
    graph = import_graph(*APPLICATION)
    assert len(graph) > 10
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " → ".join(cycle or [])


def test_the_cycle_finder_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_only_pipeline_kafka_imports_a_kafka_client() -> None:
    offenders = []
    for path in sources("pipeline", *APPLICATION):
        if path.is_relative_to(LIBRARY / "kafka"):
            continue
        for target in imports(path, top_level_only=False):
            if target.split(".")[0] in KAFKA_CLIENTS:
                offenders.append(f"{path.relative_to(ROOT)} imports {target}")
    assert not offenders, "\n".join(offenders)


def test_the_library_never_imports_the_application() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {target}"
        for path in sources("pipeline")
        for target in imports(path, top_level_only=False)
        if target.split(".")[0] in APPLICATION
    ]
    assert not offenders, "\n".join(offenders)


def test_no_module_is_over_400_lines() -> None:
    long = [
        f"{path.relative_to(ROOT)}: {count} lines"
        for path in sources("pipeline", *APPLICATION)
        if (count := len(path.read_text().splitlines())) > MAX_LINES
    ]
    assert not long, "\n".join(long)
