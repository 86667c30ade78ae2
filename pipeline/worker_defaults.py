"""Defaults of a worker's options, shared by `WorkerOptions` and `pipeline worker --help`.

Kept apart from pipeline.worker so that the CLI can show them without
importing the runtime.
"""

from __future__ import annotations

DRAIN_DEADLINE_S = 20.0
LIVENESS_STALL_S = 60.0

MAX_IN_FLIGHT_RECORDS = 10_000
"""Records held in memory by all partitions together.

Sized so that memory does not grow with the backlog: with
FETCH_PARTITION_BYTES, a worker's peak RSS on a 1M backlog is within 10% of
that on a 10k one (bench/rss.py). A record costs about 3 KB with its decoded
event and its output. The price is throughput: 100_000 records and 4 MiB
fetches ran the peers' job about 7% faster at 2.3 times the memory.
"""

FETCH_PARTITION_BYTES = 512 * 1024
"""max.partition.fetch.bytes: the fetcher buffers at most one such fetch per partition.

Throughput falls with smaller fetches (128 KiB: about 20% slower); memory
rises with larger ones (1 MiB: 1.2 times the 10k-backlog figure).
"""
