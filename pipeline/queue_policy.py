"""How a queue-mode processor's replicas take records, and what a queue cannot keep.

Checked when the processor is declared (pipeline.processor), so a mistake
shows at import, not in a running worker. What the mode is and does:
pipeline.queue_delivery.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import ConfigError

MIN_RECORD_LOCK_S = 15.0
MAX_RECORD_LOCK_S = 60.0
"""The broker's bounds on a group's record lock (group.share.min/max.record.lock.duration.ms)."""
MAX_DELIVERY_LIMIT = 10
"""The broker's bound on a group's delivery limit (group.share.max.delivery.count.limit)."""
LOCK_MARGIN_S = 5.0
"""A handler call is cancelled this long before its record's lock runs out."""


@dataclass(frozen=True)
class QueuePolicy:
    """How a queue-mode processor's replicas take records (Processor(delivery="queue"))."""

    slots: int = 1
    """Records one replica handles at once, each by a share-group member of its own: a
    slow record holds up only its slot. More slots for I/O-bound handlers."""
    record_lock_s: float = 30.0
    """How long a delivered record stays its replica's before the broker may hand it to
    another (15-60 s): how soon a dead replica's records come back. The handler's deadline
    is kept 5 s under it."""

    def __post_init__(self) -> None:
        if self.slots < 1:
            raise ConfigError(f"QueuePolicy.slots must be at least 1, not {self.slots}")
        if not MIN_RECORD_LOCK_S <= self.record_lock_s <= MAX_RECORD_LOCK_S:
            raise ConfigError(
                f"QueuePolicy.record_lock_s must be between {MIN_RECORD_LOCK_S:g} and "
                f"{MAX_RECORD_LOCK_S:g} seconds (the broker's bounds), not {self.record_lock_s:g}"
            )

    @property
    def handler_deadline_s(self) -> float:
        return self.record_lock_s - LOCK_MARGIN_S


@dataclass(frozen=True)
class Declared:
    """What a processor declares that a queue may refuse."""

    name: str
    delivery: str
    exactly_once: bool
    keeps_state: bool
    lanes: int
    retry_attempts: int


def check_queue_declaration(processor: Declared) -> None:
    """Refuse what a queue cannot keep; each message says why and what to use instead."""
    name = processor.name
    if processor.delivery not in ("stream", "queue"):
        raise ConfigError(
            f"processor {name!r}: delivery must be 'stream' or 'queue', not {processor.delivery!r}"
        )
    if processor.delivery != "queue":
        return
    why = "a share group hands any record to any replica, so"
    if processor.exactly_once:
        raise ConfigError(
            f"processor {name!r}: delivery='queue' cannot be exactly_once: {why} there is no "
            "partition offset to commit in a transaction with the outputs; queue mode is "
            "at-least-once (output ids are derived from the source record's, so a downstream "
            "upsert by event id stays idempotent)"
        )
    if processor.keeps_state:
        raise ConfigError(
            f"processor {name!r}: delivery='queue' cannot keep stores or windows: {why} no "
            "replica holds a partition's state; keep state in a stream-mode processor, or in "
            "a database (Processor(database=True))"
        )
    if processor.lanes != 1:
        raise ConfigError(
            f"processor {name!r}: delivery='queue' with lanes={processor.lanes}: lanes keep "
            "one key's records in order within a partition, and a queue has no order; use "
            "queue=QueuePolicy(slots=N) to handle N records at once per replica"
        )
    if processor.retry_attempts >= MAX_DELIVERY_LIMIT:
        raise ConfigError(
            f"processor {name!r}: delivery='queue' with retry attempts="
            f"{processor.retry_attempts}: each attempt is a delivery and the broker allows "
            f"at most {MAX_DELIVERY_LIMIT}, the last kept for dead-lettering a record no "
            f"delivery finished; use RetryPolicy(attempts={MAX_DELIVERY_LIMIT - 1}) or fewer"
        )
