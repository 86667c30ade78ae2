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


ADAPTERS = {
    "aiokafka": LIBRARY / "kafka" / "aiokafka",
    "confluent_kafka": LIBRARY / "kafka" / "confluent",
}
PORT_LEVEL = ("pipeline.kafka.port", "pipeline.kafka.record_size", "pipeline.kafka.metadata")
"""What of pipeline.kafka the runtime may see: the port and the facts every adapter shares."""


REGISTRY_CLIENT = "confluent_kafka.schema_registry"
"""confluent-kafka's registry client speaks HTTP, not Kafka: the codec's registry and the
subjects check of `topics apply` use it, and nothing else."""
REGISTRY_USERS = (LIBRARY / "wire" / "registry.py", LIBRARY / "ops" / "registry_subjects.py")


def client_imports(packages: tuple[str, ...]) -> list[tuple[Path, str]]:
    return [
        (path, target)
        for path in sources(*packages)
        for target in imports(path, top_level_only=False)
        if target.split(".")[0] in KAFKA_CLIENTS
        and not (target.startswith(REGISTRY_CLIENT) and path in REGISTRY_USERS)
    ]


def test_each_kafka_client_is_imported_by_its_adapter_only() -> None:
    found = client_imports(("pipeline", *APPLICATION))
    assert {target.split(".")[0] for _, target in found} >= set(ADAPTERS)
    offenders = [
        f"{path.relative_to(ROOT)} imports {target}"
        for path, target in found
        if not path.is_relative_to(ADAPTERS.get(target.split(".")[0], ROOT / "nowhere"))
    ]
    assert not offenders, "\n".join(offenders)


def test_the_runtime_sees_only_the_port_of_the_kafka_package() -> None:
    offenders = [
        f"{path.relative_to(ROOT)} imports {target}"
        for path in sources("pipeline/runtime")
        for target in imports(path, top_level_only=False)
        if target.startswith("pipeline.kafka")
        and not any(target == m or target.startswith(m + ".") for m in PORT_LEVEL)
    ]
    assert not offenders, "\n".join(offenders)


def test_the_adapters_keep_one_file_name_per_role() -> None:
    roles = {"clients", "consumer", "producer", "admin", "errors", "config"}
    for adapter in ("aiokafka", "confluent"):
        names = {p.stem for p in (LIBRARY / "kafka" / adapter).glob("*.py")}
        assert roles <= names, f"pipeline/kafka/{adapter} lacks {sorted(roles - names)}"
    memory = {p.stem for p in (LIBRARY / "kafka" / "memory").glob("*.py")}
    assert {"clients", "consumer", "producer", "admin"} <= memory


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


CONNECTION_SETTINGS = frozenset(
    {
        "security_protocol",
        "sasl_mechanism",
        "sasl_username",
        "sasl_password",
        "ssl_context",
        "ssl_cafile",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_key_password",
    }
)
"""Settings that become a client's connection arguments."""
EXPLAINERS = (LIBRARY / "kafka" / "connect_errors.py",)
"""Reads them to say why a connection failed, and builds no client."""


def test_each_adapters_client_configuration_is_built_in_its_config_module_only() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{node.lineno} reads settings.{node.attr}"
        for path in sources("pipeline/kafka")
        if path.name != "config.py" and path not in EXPLAINERS
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and node.attr in CONNECTION_SETTINGS
    ]
    assert not offenders, "\n".join(offenders)
    for adapter in ("aiokafka", "confluent"):
        config = (LIBRARY / "kafka" / adapter / "config.py").read_text()
        assert "security_protocol" in config, f"{adapter}'s config.py builds no connection"


def package_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def package_graph() -> dict[str, set[str]]:
    """pipeline.X -> pipeline.Y when a module of X imports one of Y (the facade aside)."""
    graph: dict[str, set[str]] = {}
    for module, targets in import_graph("pipeline").items():
        if module == "pipeline":
            continue
        source = package_of(module)
        graph.setdefault(source, set())
        for target in targets:
            if target != "pipeline" and package_of(target) != source:
                graph[source].add(package_of(target))
    return graph


KNOWN_PACKAGE_LOOP = {"pipeline.catalogue", "pipeline.wire", "pipeline.settings", "pipeline.kafka"}
"""A topic's declaration names its format (wire) and its size limit (a Kafka fact); the
codecs read the declaration; settings carry the envelope policy and the registry's
address, which wire uses. Module by module there is no cycle; the packages are one room."""


def test_packages_form_no_loop_beyond_the_known_one() -> None:
    graph = package_graph()
    reach: dict[str, set[str]] = {}
    for start in graph:
        seen: set[str] = set()
        todo = list(graph[start])
        while todo:
            node = todo.pop()
            if node not in seen:
                seen.add(node)
                todo.extend(graph.get(node, ()))
        reach[start] = seen
    looped = {package for package in graph if package in reach[package]}
    assert looped <= KNOWN_PACKAGE_LOOP, (
        f"packages that import each other round a loop: {sorted(looped - KNOWN_PACKAGE_LOOP)}"
    )
    assert {"pipeline.runtime", "pipeline.ops", "pipeline.processor"}.isdisjoint(looped)
