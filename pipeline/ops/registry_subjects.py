"""The catalogue's registry-format topics against the registry: what `topics apply` registers.

For each topic in a registry format, its subject is looked up: the same
schema already there is `unchanged`; a new subject, or a schema the
registry accepts under the topic's compatibility mode, is `register`; one it
refuses is `incompatible`, with the fields that break it. `pipeline schemas
check` stops there (exit 1 on any incompatible); `pipeline topics apply`
also sets each subject's compatibility level to the topic's and registers,
before it creates or changes any topic, so nothing is written under a
schema the registry would refuse.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from pipeline.catalogue import TopicSpec
from pipeline.errors import PipelineError
from pipeline.wire import schema_compat
from pipeline.wire.avro_compat import breaking_fields
from pipeline.wire.formats import READ_ONLY
from pipeline.wire.registry import (
    REGISTRY_FORMATS,
    SchemaRegistry,
    schema_text,
    schema_type,
    subject_for,
)

NOT_FOUND = 404
LEVELS = {"backward": "BACKWARD", "forward": "FORWARD", "full": "FULL", "none": "NONE"}


class RegistryUnavailableError(PipelineError):
    """The registry did not answer; nothing was registered."""


@dataclass
class SubjectCheck:
    topic: str
    subject: str
    compatibility: str
    action: Literal["register", "unchanged", "incompatible"]
    schema: str
    schema_type: str
    latest_version: int | None = None
    problems: list[str] = field(default_factory=list)

    def describe(self) -> str:
        if self.action == "unchanged":
            return f"version {self.latest_version} already registered"
        if self.action == "register":
            after = f" after version {self.latest_version}" if self.latest_version else ""
            return f"new version{after} ({self.compatibility} compatible)"
        return "; ".join(self.problems) or f"the registry refuses it ({self.compatibility})"


def registry_topics(specs: Sequence[TopicSpec[BaseModel]]) -> list[TopicSpec[BaseModel]]:
    return [
        s
        for s in specs
        if s.format in REGISTRY_FORMATS and s.format not in READ_ONLY and not s.is_dlq
    ]


async def check_subjects(
    registry: SchemaRegistry, specs: Sequence[TopicSpec[BaseModel]]
) -> list[SubjectCheck]:
    return await asyncio.to_thread(_check_all, registry, registry_topics(specs))


async def register_subjects(registry: SchemaRegistry, checks: Sequence[SubjectCheck]) -> None:
    await asyncio.to_thread(_register_all, registry, checks)


def _check_all(registry: SchemaRegistry, specs: list[TopicSpec[BaseModel]]) -> list[SubjectCheck]:
    from confluent_kafka.schema_registry import Schema
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    checks = []
    for spec in specs:
        subject = subject_for(spec, registry.subject_strategy)
        text = schema_text(spec)
        check = SubjectCheck(
            spec.name, subject, spec.compatibility, "register", text, schema_type(spec)
        )
        try:
            versions = _versions(registry, subject)
            if versions:
                check.latest_version = max(versions)
                try:
                    found = registry.client.lookup_schema(subject, Schema(text, schema_type(spec)))
                    check.action, check.latest_version = "unchanged", found.version
                except SchemaRegistryError as exc:
                    if exc.http_status_code != NOT_FOUND:
                        raise
                    _judge(registry, spec, subject, text, check)
        except Exception as exc:  # the registry's errors, httpx's and the socket's alike
            raise _unavailable(registry, exc) from exc
        checks.append(check)
    return checks


def _versions(registry: SchemaRegistry, subject: str) -> list[int]:
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    try:
        return list(registry.client.get_versions(subject))
    except SchemaRegistryError as exc:
        if exc.http_status_code == NOT_FOUND:
            return []
        raise


def _judge(
    registry: SchemaRegistry,
    spec: TopicSpec[BaseModel],
    subject: str,
    text: str,
    check: SubjectCheck,
) -> None:
    """A new version of an existing subject: the registry's verdict, and the fields to blame."""
    from confluent_kafka.schema_registry import Schema

    latest = registry.client.get_latest_version(subject)
    problems: list[str] = []  # protobuf: the registry's verdict alone
    if spec.format == "json_schema":
        registered, new = json.loads(latest.schema.schema_str), json.loads(text)
        problems = [d.line() for d in schema_compat.check(registered, new, spec.compatibility)]
    elif spec.format == "avro":
        registered, new = json.loads(latest.schema.schema_str), json.loads(text)
        problems = breaking_fields(registered, new, spec.compatibility)
    # The registry judges under its subject's level (set by `topics apply` when it
    # registers); the field rules judge under the topic's mode. Either refusal refuses.
    accepted = registry.client.test_compatibility(subject, Schema(text, schema_type(spec)))
    if not accepted or problems:
        check.action = "incompatible"
        check.problems = problems


def _register_all(registry: SchemaRegistry, checks: Sequence[SubjectCheck]) -> None:
    from confluent_kafka.schema_registry import Schema

    for check in checks:
        if check.action != "register":
            continue
        try:
            registry.client.set_compatibility(
                subject_name=check.subject, level=LEVELS[check.compatibility]
            )
            registry.client.register_schema(check.subject, Schema(check.schema, check.schema_type))
        except Exception as exc:  # the registry's errors, httpx's and the socket's alike
            raise _unavailable(registry, exc) from exc


def _unavailable(registry: SchemaRegistry, exc: BaseException) -> RegistryUnavailableError:
    return RegistryUnavailableError(
        f"the schema registry at {registry.url} failed ({type(exc).__name__}: {exc}); "
        "nothing was registered: check PIPELINE_SCHEMA_REGISTRY__URL and that it runs"
    )


def describe_checks(checks: Sequence[SubjectCheck]) -> list[dict[str, Any]]:
    """For --json: each check without its schema text (the registry has it)."""
    return [{k: v for k, v in check.__dict__.items() if k != "schema"} for check in checks]
