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
    "loop_stalls",
    "stall_abandoned_batches",
    "dead_lettered",
    "handler_errors",
    "envelope_repairs",
    "flood_guard_pauses",
    "dependency_waits",
    "dependency_failures",
    "sink_items",
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
]

CONSUMED: Final = "consumed"
PROCESSED: Final = "processed"
OUTPUTS: Final = "outputs"
COMMITS: Final = "commits"
REBALANCES: Final = "rebalances"
OFFSET_RESETS: Final = "offset_resets"
LOOP_STALLS: Final = "loop_stalls"
STALL_ABANDONED_BATCHES: Final = "stall_abandoned_batches"
DEAD_LETTERED: Final = "dead_lettered"
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
