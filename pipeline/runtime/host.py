"""What a partition's worker may use of the process it runs in, and nothing else.

A partition worker that held the whole runtime could reach, and change,
anything. It gets two narrow sets instead, each named for the step that
uses it: what handling a batch needs (`HandlingParts`, for
pipeline.runtime.batch_handler) and what publishing its results needs
(`PublishingParts`, for pipeline.runtime.batch_publisher). The Runtime
makes them once it is opened (pipeline.runtime.opening), so every part is
the real one; the unit tests that drive a handler with no broker make
their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pipeline.kafka.port import Clients
from pipeline.metrics import Metrics
from pipeline.processor import Processor
from pipeline.publishing.producer import EventProducer
from pipeline.resilience.breaker import BreakerRegistry
from pipeline.resilience.log_limit import RateLimitedLog
from pipeline.runtime.membership import MembershipGuard
from pipeline.runtime.outcomes import Abandoned
from pipeline.runtime.record_path import RecordPath
from pipeline.runtime.transactions import TransactionalPublisher
from pipeline.stores.rocks import RocksBounds
from pipeline.stores.services import Services

__all__ = [
    "Abandoned",
    "CopyHandoff",
    "HandlingParts",
    "NoStandbys",
    "PartitionParts",
    "PublishingParts",
    "StateParts",
]


@dataclass(frozen=True)
class HandlingParts:
    """What running a batch through the handler uses: the handler's context, the record's
    way to outputs or a dead letter, and the pools of thread and process handlers."""

    processor: Processor[Any]
    replica_id: str
    metrics: Metrics
    breakers: BreakerRegistry
    services: Services
    record_path: RecordPath
    """How a record becomes outputs or a dead letter (pipeline.runtime.record_path)."""
    dead_letter_log: RateLimitedLog
    retry_log: RateLimitedLog
    executor_for: Callable[[str], Executor]
    """The pool of `run_in="thread"` or `"process"` handlers."""
    fail: Callable[[str], None]
    """Stop the worker: something no retry can mend happened."""


@dataclass(frozen=True)
class PublishingParts:
    """What storing a handled batch uses: the sink, the producer or the transaction."""

    producer: EventProducer
    transactions: TransactionalPublisher | None
    membership: MembershipGuard
    """Whether a batch in hand may still be published after the loop stood still."""
    metrics: Metrics
    breakers: BreakerRegistry
    services: Services


class CopyHandoff(Protocol):
    """Between a partition's worker and the replica's warm copies (pipeline.runtime.standbys):
    RocksDB opens a directory once, so a copy is closed before its worker opens it, and
    kept again only after the worker closed it."""

    def taking(self, partition: int) -> None: ...

    def returned(self, partition: int) -> None: ...


class NoStandbys:
    def taking(self, partition: int) -> None:
        pass

    def returned(self, partition: int) -> None:
        pass


@dataclass(frozen=True)
class StateParts:
    """Where a partition's stores live and how they are restored (pipeline.stores)."""

    clients: Clients
    """For the restoring consumer, which reads the changelogs outside the group."""
    group: str
    """Names the changelogs: a replay's group has its own."""
    directory: Path
    bounds: RocksBounds
    read_committed: bool
    """Exactly-once: restore only what committed transactions wrote."""
    handoff: CopyHandoff = field(default_factory=NoStandbys)


@dataclass(frozen=True)
class PartitionParts:
    """Both, and the one signal a partition gives back: a batch finished."""

    handling: HandlingParts
    publishing: PublishingParts
    room_freed: asyncio.Event
    """Set when a batch finishes: the in-flight bound may have room again."""
    state: StateParts | None = None
    """None: the processor declares no stores."""
