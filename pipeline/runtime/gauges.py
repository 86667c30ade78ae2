"""The worker's gauges: bulkheads, lag, commits, memory, breakers, readiness."""

from __future__ import annotations

from collections.abc import Callable

from pipeline.kafka.port import Consumer
from pipeline.metric_names import (
    BREAKER_OPEN,
    BREAKER_STATE,
    HELD_RECORDS,
    HELD_RECORDS_PEAK,
    PARTITION_COMMITTED_OFFSET,
    PARTITION_LAG_RECORDS,
    PARTITION_PAUSED,
    PARTITION_QUEUED_RECORDS,
    PARTITION_RESTORE_REMAINING,
    READY,
    WORKER_INFO,
)
from pipeline.metrics import Labels, Metrics, labels_of
from pipeline.resilience.breaker import BreakerRegistry, BreakerState
from pipeline.runtime.partition_worker import PartitionWorker
from pipeline.runtime.partitions import Partitions

PartitionReading = Callable[[PartitionWorker], float]


def register_worker_gauges(
    metrics: Metrics,
    partitions: Partitions,
    consumer: Consumer,
    breakers: BreakerRegistry,
    identity: Labels,
) -> None:
    """`identity` (processor, replica, group) is exported once, as an info series to join on."""

    def per_partition(read: PartitionReading) -> Callable[[], dict[Labels, float]]:
        def values() -> dict[Labels, float]:
            return {
                labels_of(topic=tp.topic, partition=tp.partition): read(worker)
                for tp, worker in partitions.workers.items()
            }

        return values

    def lag(worker: PartitionWorker) -> float:
        return float(max(0, (consumer.highwater(worker.tp) or 0) - worker.offsets.committed))

    metrics.gauge(
        PARTITION_QUEUED_RECORDS,
        per_partition(lambda worker: float(len(worker.queue))),
    )
    metrics.gauge(PARTITION_LAG_RECORDS, per_partition(lag))
    metrics.gauge(
        PARTITION_RESTORE_REMAINING,
        per_partition(lambda w: float(w.restoration.remaining) if w.restoration else 0.0),
    )
    metrics.gauge(
        PARTITION_COMMITTED_OFFSET,
        per_partition(lambda worker: float(worker.offsets.committed)),
    )
    metrics.gauge(
        PARTITION_PAUSED,
        per_partition(lambda worker: 1.0 if worker.tp in partitions.paused else 0.0),
    )
    metrics.gauge(
        HELD_RECORDS,
        lambda: {(): float(sum(worker.held for worker in partitions.workers.values()))},
    )
    metrics.gauge(
        HELD_RECORDS_PEAK,
        lambda: {(): float(partitions.peak_held)},
    )
    metrics.gauge(
        BREAKER_OPEN,
        lambda: {
            labels_of(dependency=b.name): 0.0 if b.state is BreakerState.CLOSED else 1.0
            for b in breakers.all()
        },
    )
    metrics.gauge(
        BREAKER_STATE,
        lambda: {labels_of(dependency=b.name): float(b.state.level) for b in breakers.all()},
    )
    metrics.gauge(READY, lambda: {(): 1.0 if partitions.ready else 0.0})
    metrics.gauge(WORKER_INFO, lambda: {identity: 1.0})
