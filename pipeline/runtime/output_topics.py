"""What a worker learns about the topics it writes before it joins its group.

The DLQ's and the outputs' `max.message.bytes`, so nothing is sent that the
broker refuses; and, for topics in a registry format, that a registry is
configured and knows the outputs' schemas. A registry that does not answer
yet is waited for (logged, backing off) rather than joining the group and
failing records one by one.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pipeline.catalogue import TopicSpec
from pipeline.kafka.port import Clients
from pipeline.kafka.record_size import BROKER_DEFAULT_MAX_MESSAGE_BYTES
from pipeline.ops.topics import max_message_bytes
from pipeline.processor import Processor
from pipeline.resilience.breaker import DependencyError
from pipeline.resilience.waiting import Abandoned, until_done
from pipeline.wire.registry import REGISTRY_FORMATS, SchemaRegistry, registry_for

log = logging.getLogger("pipeline.worker")

REGISTRY_WAIT_CAP_S = 10.0
REGISTRY_WAIT_DOUBLINGS = 8
"""Enough to reach the cap; more would overflow a float after hours of waiting."""


async def message_limits(clients: Clients, processor: Processor[Any]) -> dict[str, int]:
    """max.message.bytes of the DLQ and the outputs; missing ones are the broker default."""
    topics = [processor.source.dlq_name, *(spec.name for spec in processor.outputs)]
    try:
        limits = await max_message_bytes(clients, topics)
    except Exception as exc:  # noqa: BLE001 - an admin refusal must not stop the worker
        log.warning(
            "could not read max.message.bytes of %s (%s: %s); assuming the broker "
            "default of %d bytes",
            ", ".join(topics),
            type(exc).__name__,
            exc,
            BROKER_DEFAULT_MAX_MESSAGE_BYTES,
        )
        limits = {}
    missing = [topic for topic in topics if topic not in limits]
    if missing:
        log.warning(
            "topic(s) %s not found on the cluster; run `pipeline topics apply` "
            "(records for them wait until they exist)",
            ", ".join(missing),
        )
    return limits


async def prepare_schemas(processor: Processor[Any], stopping: asyncio.Event) -> None:
    """A registry for every registry-format topic (ConfigError if none), outputs' ids known.

    Returns early, without error, when the worker is asked to stop meanwhile.
    """
    for spec in (processor.source, *processor.outputs):
        if spec.format not in REGISTRY_FORMATS:
            continue
        registry = registry_for(spec)
        if spec is processor.source:
            continue
        try:
            await _wait_for_schema(registry, spec, stopping)
        except Abandoned:
            return


async def _wait_for_schema(
    registry: SchemaRegistry, spec: TopicSpec[Any], stopping: asyncio.Event
) -> None:
    def failed(exc: BaseException, waits: int, delay: float) -> None:
        log.warning(
            "the schema registry at %s does not answer for %s (%s); retrying in %.0fs",
            registry.url,
            spec.name,
            exc,
            delay,
        )

    await until_done(
        lambda: registry.prepare(spec),
        retry_on=DependencyError,
        delay_s=_registry_delay_s,
        stopping=stopping,
        on_failure=failed,
    )


def _registry_delay_s(waits: int) -> float:
    return min(REGISTRY_WAIT_CAP_S, 0.5 * 2.0 ** min(waits, REGISTRY_WAIT_DOUBLINGS))
