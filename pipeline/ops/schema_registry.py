"""Each topic's event schemas, kept in the catalogue topic, and the check of a changed one.

`topics apply` records, next to a topic's key, the JSON Schema of its event
model and its `schema_version`, under the topic's name (the current one)
and under `<topic>#v<version>` (every version applied, kept by compaction).
Before applying it compares each declared model with the registered one
under the topic's compatibility mode (pipeline.wire.schema_compat): an
incompatible change is refused, field by field, unless the operator says
`--allow-incompatible`. Pure functions: the plan is tested without a broker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from pipeline.catalogue import TopicSpec
from pipeline.wire.schema_compat import Difference, check

VERSION_SEPARATOR = "#v"


@dataclass(frozen=True)
class RegisteredSchema:
    topic: str
    version: int
    compatibility: str
    schema: dict[str, Any]
    applied_at_ms: int


@dataclass
class SchemaCheck:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    changes: dict[str, str] = field(default_factory=dict)
    """Topic → what applying records: "v1 registered", "v1 → v2 (backward compatible)"."""


def json_schema(spec: TopicSpec[BaseModel]) -> dict[str, Any]:
    return spec.event_model.model_json_schema()


def version_key(topic: str, version: int) -> str:
    return f"{topic}{VERSION_SEPARATOR}{version}"


def parse_version_key(key: str) -> tuple[str, int] | None:
    topic, separator, version = key.rpartition(VERSION_SEPARATOR)
    if not separator or not version.isdigit():
        return None
    return topic, int(version)


def registry_entries(spec: TopicSpec[BaseModel], applied_at_ms: int) -> dict[str, dict[str, Any]]:
    """What `topics apply` writes for a spec: the current entry and its version's."""
    entry: dict[str, Any] = {
        "key_field": spec.key_field,
        "event_type": spec.event_type,
        "schema_version": spec.schema_version,
        "applied_at_ms": applied_at_ms,
    }
    if spec.is_dlq:
        return {spec.name: entry}
    entry["compatibility"] = spec.compatibility
    entry["json_schema"] = json_schema(spec)
    return {spec.name: entry, version_key(spec.name, spec.schema_version): entry}


def registered_schemas(entries: dict[str, dict[str, Any]]) -> dict[str, list[RegisteredSchema]]:
    """Topic → its registered versions, oldest first (entries as read from the registry)."""
    found: dict[str, list[RegisteredSchema]] = {}
    for key, entry in entries.items():
        parsed = parse_version_key(key)
        if parsed is None or "json_schema" not in entry:
            continue
        topic, version = parsed
        found.setdefault(topic, []).append(
            RegisteredSchema(
                topic,
                version,
                str(entry.get("compatibility", "backward")),
                entry["json_schema"],
                int(entry.get("applied_at_ms", 0)),
            )
        )
    return {topic: sorted(versions, key=lambda s: s.version) for topic, versions in found.items()}


def check_schemas(
    specs: list[TopicSpec[BaseModel]],
    registered: dict[str, list[RegisteredSchema]],
    allow_incompatible: bool = False,
) -> SchemaCheck:
    """Whether each declared model may replace the registered one, and what applying records."""
    result = SchemaCheck()
    for spec in specs:
        if spec.is_dlq:
            continue
        versions = registered.get(spec.name, [])
        try:
            declared = json_schema(spec)
        except Exception as exc:  # noqa: BLE001 - a model pydantic cannot describe
            result.warnings.append(
                f"topic {spec.name!r}: no JSON Schema for {spec.event_model.__name__} "
                f"({type(exc).__name__}: {exc}); its changes are not checked"
            )
            continue
        if not versions:
            result.changes[spec.name] = f"schema v{spec.schema_version} registered"
            continue
        latest = versions[-1]
        if spec.schema_version < latest.version:
            result.errors.append(
                f"topic {spec.name!r}: the catalogue declares schema version "
                f"{spec.schema_version}, older than version {latest.version} registered on the "
                "cluster: apply the newer catalogue, or raise schema_version above it"
            )
            continue
        if declared == latest.schema and spec.schema_version == latest.version:
            continue
        found = _differences(spec, latest, declared)
        what = f"v{latest.version} → v{spec.schema_version}"
        if not found:
            result.changes[spec.name] = f"schema {what} ({spec.compatibility} compatible)"
            continue
        diff = "\n".join(f"  - {d.line()}" for d in found)
        if allow_incompatible:
            result.warnings.append(
                f"topic {spec.name!r}: schema {what} is not {spec.compatibility} compatible; "
                f"applied anyway (--allow-incompatible):\n{diff}"
            )
            result.changes[spec.name] = f"schema {what} (incompatible, allowed)"
        else:
            result.errors.append(
                f"topic {spec.name!r}: schema {what} is not {spec.compatibility} compatible "
                f"with the registered version {latest.version}:\n{diff}\n"
                "  (make the change compatible as suggested, add an upcaster for older "
                "bodies, or pass --allow-incompatible once every reader is ready)"
            )
    return result


def _differences(
    spec: TopicSpec[BaseModel], latest: RegisteredSchema, declared: dict[str, Any]
) -> list[Difference]:
    """Under the topic's mode; an upcaster from the registered version answers for old bodies."""
    mode = spec.compatibility
    upcast = any(latest.version <= v < spec.schema_version for v in spec.upcasters)
    if upcast and mode in ("backward", "full"):
        mode = "forward" if mode == "full" else "none"
    return check(latest.schema, declared, mode)
