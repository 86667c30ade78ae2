"""Bodies written at another schema version than the consumer's.

Every record carries the `schema-version` its producer's TopicSpec had.
An older body is brought forward by the topic's upcasters, one version at a
time; a version with no upcaster is read as it is, which `topics apply`'s
compatibility check made safe (a field added with a default needs none).
A newer body is read as it is where the topic promises old consumers can
read new events (`forward`, `full`); otherwise it is dead-lettered with
both versions named, to be redriven once the newer consumer runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from pipeline.catalogue import TopicSpec
from pipeline.errors import SchemaVersionError

HEADER_SCHEMA_VERSION = "schema-version"
"""Defined here, not in pipeline.wire.codec (which imports this module and re-exports it)."""

READS_NEWER = ("forward", "full")


def schema_version_of(
    raw: bytes, topic: str, partition: int | None = None, offset: int | None = None
) -> int:
    """The header's version; SchemaVersionError when it is not a positive number."""
    try:
        version = int(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        version = 0
    if version < 1:
        raise SchemaVersionError(
            f"schema-version header {raw[:40]!r} is not a positive number; publish with "
            "the TopicSpec's schema_version (EventProducer and the gateway do)",
            topic=topic,
            partition=partition,
            offset=offset,
            field="schema-version",
        )
    return version


def version_in(
    spec: TopicSpec[BaseModel],
    headers: Sequence[tuple[str, bytes | None]],
    partition: int | None = None,
    offset: int | None = None,
) -> int | None:
    """The body's version from its headers when it is not the spec's own (None: it is, or none)."""
    raw = None
    for name, value in headers:
        if name == HEADER_SCHEMA_VERSION:
            raw = value
    if raw is None or raw == str(spec.schema_version).encode():
        return None
    return schema_version_of(raw, spec.name, partition, offset)


def to_current(
    spec: TopicSpec[BaseModel],
    fields: dict[str, Any],
    version: int,
    partition: int | None = None,
    offset: int | None = None,
) -> dict[str, Any]:
    """`fields` of `version` as the current model's, or SchemaVersionError saying why not."""
    current = spec.schema_version
    model = spec.event_model.__name__
    if version > current:
        if spec.compatibility in READS_NEWER:
            return fields
        raise SchemaVersionError(
            f"body is schema version {version}, newer than version {current} this consumer "
            f"reads as {model}; topic {spec.name!r} is {spec.compatibility!r} compatible, "
            "which does not promise that old consumers read new events: deploy the "
            f"consumer for version {version} and redrive these dead letters",
            topic=spec.name,
            partition=partition,
            offset=offset,
        )
    while version < current:
        upcaster = spec.upcasters.get(version)
        if upcaster is not None:
            try:
                fields = upcaster(fields)
            except Exception as exc:
                raise SchemaVersionError(
                    f"the upcaster from schema version {version} to {version + 1} failed "
                    f"({type(exc).__name__}: {exc})",
                    topic=spec.name,
                    partition=partition,
                    offset=offset,
                ) from exc
            if type(fields) is not dict:
                raise SchemaVersionError(
                    f"the upcaster from schema version {version} to {version + 1} returned "
                    f"{type(fields).__name__}, not a dict of fields",
                    topic=spec.name,
                    partition=partition,
                    offset=offset,
                )
        version += 1
    return fields
