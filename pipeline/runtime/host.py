"""What a partition's worker may use of the process it runs in, and nothing else.

A partition worker that held the whole runtime could reach, and change,
anything; this Protocol is its reach. `Runtime` satisfies it, and so does
the stand-in of the unit tests that drive a partition worker with no broker.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from typing import Any, Protocol

from pipeline.metrics import Metrics
from pipeline.processor import Processor
from pipeline.publishing.producer import EventProducer
from pipeline.resilience.breaker import BreakerRegistry
from pipeline.resilience.log_limit import RateLimitedLog
from pipeline.runtime.membership import MembershipGuard
from pipeline.runtime.outcomes import Abandoned
from pipeline.runtime.record_path import RecordPath
from pipeline.runtime.services import Services
from pipeline.runtime.transactions import TransactionalPublisher

__all__ = ["Abandoned", "PartitionHost"]


class PartitionHost(Protocol):
    processor: Processor[Any]
    replica_id: str
    metrics: Metrics
    breakers: BreakerRegistry
    services: Services
    record_path: RecordPath
    """How a record becomes outputs or a dead letter (pipeline.runtime.record_path)."""
    dead_letter_log: RateLimitedLog
    retry_log: RateLimitedLog
    producer: EventProducer
    transactions: TransactionalPublisher | None
    room_freed: asyncio.Event
    """Set when a batch finishes: the in-flight bound may have room again."""
    membership: MembershipGuard
    """Whether a batch in hand may still be published after the loop stood still."""

    def executor_for(self, kind: str) -> Executor:
        """The pool of `run_in="thread"` or `"process"` handlers."""

    def fail(self, reason: str) -> None:
        """Stop the worker: something no retry can mend happened."""
