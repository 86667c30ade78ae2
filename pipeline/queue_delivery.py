"""Queue delivery: a processor whose replicas share records, not partitions (a share group).

A consumer group gives each partition to one replica: per-key order, and
never more busy replicas than partitions. A share group (Kafka 4.2+,
KIP-932) hands each record to any one member and takes its outcome record
by record: any number of replicas, a slow record holds up only its own
slot, and there is no order. What rests on partition ownership cannot be
had, and is refused at declaration, with the reason (pipeline.queue_policy).

Attempt n of a record is its n-th delivery (to whichever replica): a
retryable failure releases it after the retry back-off, and the failure of
the retry policy's last attempt dead-letters it. A delivery can end with
no outcome: its replica died, froze or outlived the record lock, and
librdkafka's share consumer (2.16) acquires whole record batches, so a
replica that dies costs every record it had acquired a delivery, handled
or not (measured: a record's deliveries as its handlers saw them skipped
up to 2 numbers when 2 of 6 replicas were killed). So the group's delivery
limit is the broker's highest (10), and the replica that gets a record's
last delivery dead-letters it without running it (DeliveryLimitReached):
the broker never archives a record unseen.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.errors import PipelineError
from pipeline.processor import Processor
from pipeline.queue_policy import MAX_DELIVERY_LIMIT


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
        "share.delivery.count.limit": str(MAX_DELIVERY_LIMIT),
    }


class DeliveryLimitReached(PipelineError):
    """The dead-letter reason of a record whose every delivery ended without an outcome."""

    def __init__(self, topic: str, partition: int, offset: int, deliveries: int) -> None:
        self.deliveries = deliveries
        super().__init__(
            f"{topic}-{partition}@{offset} was delivered {deliveries} times and no replica "
            "finished it (each died, froze, or outlived the record lock: a handler that "
            "blocks the event loop or crashes the process?); this last delivery the share "
            "group allows was not run. Fix the handler, then `pipeline dlq redrive` it"
        )
