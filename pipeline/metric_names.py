"""Every metric's name, in one place: a typo in a name is a type error, not a missing series.

`Metrics` takes a `MetricName`; the constants are what code passes. Served
with the process's prefix (`pipeline_`, `pipeline_gateway_`) and, for
counters, `_total`.
"""

from __future__ import annotations

from typing import Final, Literal

MetricName = Literal[
    # the worker
    "consumed",
    "processed",
    "outputs",
    "commits",
    "rebalances",
    "offset_resets",
    "state_restored",
    "partition_restore_remaining_records",
    "standby_records",
    "standby_partitions",
    "window_late_records",
    "loop_stalls",
    "stall_abandoned_batches",
    "dead_lettered",
    "queue_outcomes",
    "handler_errors",
    "envelope_repairs",
    "flood_guard_pauses",
    "dependency_waits",
    "dependency_failures",
    "sink_items",
    "batch_seconds",
    "record_stage_seconds",
    "replay_outside_range",
    "partition_queued_records",
    "partition_lag_records",
    "partition_committed_offset",
    "partition_paused",
    "held_records",
    "held_records_peak",
    "breaker_open",
    "breaker_state",
    "ready",
    # tables, the cache, PostgreSQL
    "table_records",
    "table_invalid_records",
    "cache_entries",
    "cache_hits",
    "cache_misses",
    "cache_expired",
    "cache_evictions",
    "cache_loads",
    "cache_rebuilds",
    "db_acquire_seconds",
    "db_pool_connections",
    "db_pool_exhausted",
    # the gateway
    "requests",
    "request_seconds",
    "rejections",
    "events_published",
    # lag and scaling
    "group_lag_records",
    "group_lag_seconds",
    "group_oldest_unconsumed_age_seconds",
    "supervisor_replicas",
    "desired_replicas",
    "target_drain_seconds",
    "worker_info",
]

CONSUMED: Final = "consumed"
PROCESSED: Final = "processed"
OUTPUTS: Final = "outputs"
COMMITS: Final = "commits"
REBALANCES: Final = "rebalances"
OFFSET_RESETS: Final = "offset_resets"
STATE_RESTORED: Final = "state_restored"
PARTITION_RESTORE_REMAINING: Final = "partition_restore_remaining_records"
STANDBY_RECORDS: Final = "standby_records"
STANDBY_PARTITIONS: Final = "standby_partitions"
WINDOW_LATE_RECORDS: Final = "window_late_records"
LOOP_STALLS: Final = "loop_stalls"
STALL_ABANDONED_BATCHES: Final = "stall_abandoned_batches"
DEAD_LETTERED: Final = "dead_lettered"
QUEUE_OUTCOMES: Final = "queue_outcomes"
HANDLER_ERRORS: Final = "handler_errors"
ENVELOPE_REPAIRS: Final = "envelope_repairs"
FLOOD_GUARD_PAUSES: Final = "flood_guard_pauses"
DEPENDENCY_WAITS: Final = "dependency_waits"
DEPENDENCY_FAILURES: Final = "dependency_failures"
SINK_ITEMS: Final = "sink_items"
REPLAY_OUTSIDE_RANGE: Final = "replay_outside_range"
PARTITION_QUEUED_RECORDS: Final = "partition_queued_records"
PARTITION_LAG_RECORDS: Final = "partition_lag_records"
PARTITION_COMMITTED_OFFSET: Final = "partition_committed_offset"
PARTITION_PAUSED: Final = "partition_paused"
HELD_RECORDS: Final = "held_records"
HELD_RECORDS_PEAK: Final = "held_records_peak"
BREAKER_OPEN: Final = "breaker_open"
BREAKER_STATE: Final = "breaker_state"
READY: Final = "ready"
WORKER_INFO: Final = "worker_info"
TABLE_RECORDS: Final = "table_records"
TABLE_INVALID_RECORDS: Final = "table_invalid_records"
CACHE_ENTRIES: Final = "cache_entries"
DB_ACQUIRE_SECONDS: Final = "db_acquire_seconds"
DB_POOL_CONNECTIONS: Final = "db_pool_connections"
DB_POOL_EXHAUSTED: Final = "db_pool_exhausted"
REQUESTS: Final = "requests"
REQUEST_SECONDS: Final = "request_seconds"
REJECTIONS: Final = "rejections"
EVENTS_PUBLISHED: Final = "events_published"
GROUP_LAG_RECORDS: Final = "group_lag_records"
GROUP_LAG_SECONDS: Final = "group_lag_seconds"
GROUP_OLDEST_UNCONSUMED_AGE_SECONDS: Final = "group_oldest_unconsumed_age_seconds"
SUPERVISOR_REPLICAS: Final = "supervisor_replicas"
DESIRED_REPLICAS: Final = "desired_replicas"
BATCH_SECONDS: Final = "batch_seconds"
RECORD_STAGE_SECONDS: Final = "record_stage_seconds"

MetricKind = Literal["counter", "gauge", "histogram"]

CATALOGUE: Final[dict[MetricName, tuple[MetricKind, str, str]]] = {
    # name: (kind, labels, what it tells an operator)
    "consumed": ("counter", "", "Records fetched from the input topics."),
    "processed": ("counter", "", "Records whose handler finished (outputs or nothing)."),
    "outputs": ("counter", "", "Output records handed to the producer."),
    "commits": ("counter", "", "Offset commits that succeeded."),
    "rebalances": ("counter", "", "Assignments this replica received."),
    "state_restored": (
        "counter",
        "store",
        "Store changes read back from changelogs into local copies (restoration).",
    ),
    "partition_restore_remaining_records": (
        "gauge",
        "topic, partition",
        "Changelog records a partition still reads back into its stores before its first record.",
    ),
    "standby_records": (
        "counter",
        "store",
        "Store changes read from other replicas' changelogs into this replica's warm copies.",
    ),
    "standby_partitions": (
        "gauge",
        "",
        "Partitions of other replicas this one keeps warm copies of (Processor standbys).",
    ),
    "window_late_records": (
        "counter",
        "window",
        "Events dropped because their windows had closed (past the end plus the grace).",
    ),
    "offset_resets": (
        "counter",
        "topic, partition, policy",
        "Partitions whose commit was behind the log start (retention deleted unhandled records).",
    ),
    "loop_stalls": ("counter", "", "Event-loop stalls of a second or more (a blocking handler)."),
    "stall_abandoned_batches": (
        "counter",
        "",
        "Batches dropped unpublished after a stall because the group had moved on.",
    ),
    "dead_lettered": ("counter", "error", "Records sent to a dead-letter topic, by error type."),
    "queue_outcomes": (
        "counter",
        "outcome",
        "Queue mode: records acknowledged to the share group, by outcome (accept, release, "
        "reject).",
    ),
    "handler_errors": ("counter", "error", "Handler exceptions, retried or dead-lettered."),
    "envelope_repairs": ("counter", "repair", "Records read despite a damaged envelope."),
    "flood_guard_pauses": ("counter", "topic", "Pauses of a partition flooding the DLQ."),
    "dependency_waits": ("counter", "dependency", "Back-offs on an unavailable dependency."),
    "dependency_failures": ("counter", "dependency", "Calls to a dependency that failed."),
    "sink_items": ("counter", "sink", "Items written to a sink (PostgreSQL, a table)."),
    "batch_seconds": (
        "histogram",
        "topic",
        "Time to run a batch through its handler, from the first record to the last.",
    ),
    "record_stage_seconds": (
        "histogram",
        "stage",
        "A sampled record's time in each stage (fetched, queued, handled, acknowledged, "
        "committed) and end_to_end, their sum.",
    ),
    "replay_outside_range": ("counter", "", "Records a replay fetched outside its range."),
    "partition_queued_records": ("gauge", "topic, partition", "Records in a bulkhead."),
    "partition_lag_records": ("gauge", "topic, partition", "End offset minus the commit."),
    "partition_committed_offset": ("gauge", "topic, partition", "The partition's last commit."),
    "partition_paused": (
        "gauge",
        "topic, partition",
        "1 while the partition is left out of the fetch (its bulkhead is full).",
    ),
    "held_records": ("gauge", "", "Records in memory: queued, being handled or awaiting acks."),
    "held_records_peak": ("gauge", "", "Most records held at once (--max-in-flight-records)."),
    "breaker_open": ("gauge", "dependency", "1 while a circuit is open or half-open."),
    "breaker_state": (
        "gauge",
        "dependency",
        "A dependency's circuit: 0 closed, 1 half-open (probing), 2 open.",
    ),
    "ready": ("gauge", "", "1 once assigned and caught up."),
    "worker_info": (
        "gauge",
        "processor, replica, group",
        "Always 1: who this worker is, to join its other series on.",
    ),
    "table_records": ("counter", "table", "Records a table read from its changelog."),
    "table_invalid_records": ("counter", "table", "Changelog records a table could not read."),
    "cache_entries": ("gauge", "cache", "Entries in the local cache."),
    "cache_hits": ("counter", "cache", "Local cache hits."),
    "cache_misses": ("counter", "cache", "Local cache misses."),
    "cache_expired": ("counter", "cache", "Entries found expired."),
    "cache_evictions": ("counter", "cache", "Entries evicted for room."),
    "cache_loads": ("counter", "cache", "Entries loaded from the source."),
    "cache_rebuilds": ("counter", "cache", "Caches rebuilt after a damaged file."),
    "db_acquire_seconds": ("counter", "", "Seconds spent waiting for a pooled connection."),
    "db_pool_connections": ("gauge", "state", "PostgreSQL pool connections, by state."),
    "db_pool_exhausted": ("counter", "", "Times the pool had no free connection."),
    "requests": ("counter", "route, status", "Gateway requests, by route and status."),
    "request_seconds": ("histogram", "route", "Gateway request latency."),
    "rejections": ("counter", "reason", "Requests the gateway refused, by reason."),
    "events_published": ("counter", "topic", "Events the gateway published."),
    "group_lag_records": ("gauge", "group, topic, partition", "Records not yet committed."),
    "group_lag_seconds": (
        "gauge",
        "group, topic, partition",
        "Lag divided by the measured consumption rate.",
    ),
    "group_oldest_unconsumed_age_seconds": (
        "gauge",
        "group, topic, partition",
        "Age of the oldest record not yet committed.",
    ),
    "supervisor_replicas": ("gauge", "group, state", "Worker processes the supervisor runs."),
    "desired_replicas": ("gauge", "group", "Replicas the autoscaler asks for."),
    "target_drain_seconds": (
        "gauge",
        "group",
        "The drain target: lag in seconds the autoscaler sizes the group to clear within.",
    ),
}
"""Every metric, for /metrics' HELP lines and the table in docs/operations/observe.md (a test
keeps them equal)."""
