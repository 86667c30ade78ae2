"""Defaults of a worker's options, shared by `WorkerOptions` and `pipeline worker --help`.

Kept apart from pipeline.runtime.worker so that the CLI can show them without
importing the runtime.
"""

from __future__ import annotations

DRAIN_DEADLINE_S = 20.0
LIVENESS_STALL_S = 60.0

MAX_IN_FLIGHT_RECORDS = 10_000
"""Records held in memory by all partitions together.

Sized so that memory does not grow with the backlog; the price is some throughput
(figures in docs/operations/tuning.md).
"""

FETCH_PARTITION_BYTES = 512 * 1024
"""max.partition.fetch.bytes: the fetcher buffers at most one such fetch per partition.

Smaller fetches cost throughput, larger ones memory (docs/operations/tuning.md).
"""

FETCH_RESPONSE_PARTITIONS = 2
"""fetch.max.bytes, as a multiple of the per-partition fetch.

aiokafka holds a fetch response about three times over while it parses it, so an
uncapped response decides a backlogged worker's peak memory. Each response still
carries at least one batch, so a partition fetch larger than the cap is never starved.
"""

STORE_BLOCK_CACHE_BYTES = 64 * 1024 * 1024
"""One block cache for all the stores of a process, whatever their number of partitions."""
STORE_WRITE_BUFFER_BYTES = 4 * 1024 * 1024
STORE_WRITE_BUFFERS = 2
"""Per store and partition: memtables stay this size however many keys it holds."""
