"""Queue delivery: a processor whose replicas share records, not partitions (a share group).

A consumer group gives each partition to one replica: per-key order, and
never more busy replicas than partitions. A share group (Kafka 4.2+,
KIP-932) hands each record to any one member and takes its outcome record
by record: any number of replicas, a slow record holds up only its own
slot, and there is no order. What rests on partition ownership cannot be
had, and is refused at declaration, with the reason (pipeline.queue_policy).

The processor's retry policy becomes the group's delivery limit: attempt n
of a record is its n-th delivery (to whichever replica), a retryable failure
releases it after the retry back-off, the last attempt's failure
dead-letters it. The broker is told one delivery more than that, so a
record whose deliveries all ended without an outcome (its replica died,
froze or outlived the record lock) is dead-lettered by the replica that
gets it last, without running it, not archived by the broker unseen.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.errors import PipelineError
from pipeline.processor import Processor


def handler_deadline(processor: Processor[Any]) -> float | None:
    """The handler's deadline: in queue mode never past the record's lock."""
    declared = processor.handler_timeout_s
    if processor.delivery != "queue":
        return declared
    cap = processor.queue.handler_deadline_s
    return cap if declared is None else min(declared, cap)


def share_group_configs(processor: Processor[Any]) -> Mapping[str, str]:
    """The group configs a queue-mode processor's share group runs with."""
    return {
        "share.auto.offset.reset": "earliest",
        "share.record.lock.duration.ms": str(int(processor.queue.record_lock_s * 1000)),
        "share.delivery.count.limit": str(processor.retry.attempts + 1),
    }


class DeliveryLimitReached(PipelineError):
    """The dead-letter reason of a record whose every delivery ended without an outcome."""

    def __init__(self, topic: str, partition: int, offset: int, deliveries: int) -> None:
        self.deliveries = deliveries
        super().__init__(
            f"{topic}-{partition}@{offset} was delivered {deliveries} times and no replica "
            "finished it (each died, froze, or outlived the record lock: a handler that "
            "blocks the event loop or crashes the process?); it was not run again. Fix the "
            "handler, then `pipeline dlq redrive` it"
        )
