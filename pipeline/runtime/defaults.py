"""Defaults of a worker's options, shared by `WorkerOptions` and `pipeline worker --help`.

Kept apart from pipeline.runtime.worker so that the CLI can show them without
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
rises with larger ones (1 MiB: 1.2 times the 10k-backlog figure, measured
before FETCH_RESPONSE_PARTITIONS capped a response).
"""

FETCH_RESPONSE_PARTITIONS = 2
"""fetch.max.bytes, as a multiple of the per-partition fetch.

aiokafka holds a fetch response about three times over while it reads and
parses it (the stream's buffer, the bytes copied out of it, each partition's
slice). Uncapped, one response for 12 busy partitions was 6 MiB, and that
transient decided a worker's peak RSS on a 1M backlog: 1.20 times the 10k
figure (bench/rss.py). Capped at four partitions' worth (2 MiB) the ratio
was 1.09 to 1.10 over four runs; at two (1 MiB by default) 1.06, 1.06 and
1.09, with the 1M figure 8 MB lower. The price is throughput: smaller
responses mean more fetch round trips and smaller produce batches. In
bench/pipeline_peers.py (ours alone, alternating runs on one broker) two
averaged 41.1k events/s over five runs against 42.6k uncapped (3.5% less);
another series put four at 41.8k against 45.3k uncapped. A larger
--fetch-partition-bytes raises the cap with it. Each response still carries
at least one batch, so a partition fetch larger than the cap is never
starved.
"""
