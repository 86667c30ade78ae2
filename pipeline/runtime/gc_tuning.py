"""Garbage-collector settings for long-running, allocation-heavy processes.

Workers and publishers allocate and free a few objects per event. With
CPython's default thresholds the collector runs often enough to cost a large
share of a worker's throughput, and its full passes show in p99 latency
(measured: docs/design-notes.md#gc). Objects that
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
