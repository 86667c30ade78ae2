"""Garbage-collector settings for long-running, allocation-heavy processes.

Workers and publishers allocate and free a few objects per event. With
CPython's default thresholds the collector ran often enough to cost a worker
a quarter of its throughput and the producer a tenth (bench/pipeline_peers.py,
bench/producer.py), and its full passes showed in p99 latency. Objects that
live for the whole process (modules, settings, the catalogue) are frozen out
of every collection; the young generation is collected 70 times less often.
Nothing here changes what is collected, only when.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000
MIDDLE_THRESHOLD = 20
OLD_THRESHOLD = 100


def tune_for_throughput() -> None:
    """Call once, after start-up imports, in a worker or publisher process."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
