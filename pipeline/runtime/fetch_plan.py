"""Which partitions a worker fetches for next, under its in-flight bound.

Partitions held back are left out of the fetch call rather than paused in
the client: aiokafka drops a paused partition's buffered fetch (to fetch it
again on resume) and leaves that buffer to the full garbage collection, which
made a worker's memory grow with its backlog. Left out, a partition keeps its
one buffered fetch and the client asks for no more.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from typing import TypeVar

Partition = TypeVar("Partition")


def fetch_plan(
    assigned: Iterable[Partition],
    held: Mapping[Partition, int],
    held_back: Set[Partition],
    limit: int,
    batch_records: int,
) -> tuple[list[Partition], int]:
    """Partitions to fetch for, and how many records at most (0: fetch nothing).

    Nothing is fetched while the worker holds `limit` records. Below that a
    partition may hold an equal share of the limit, but at least two batches
    (one handled, one waiting) so that one alone with a backlog keeps its
    handler busy. One holding its share is not fetched for: a slow partition
    cannot take the memory the others need to keep going (the bulkhead).
    """
    partitions = list(assigned)
    room = limit - sum(held.values())
    if room <= 0:
        return [], 0
    share = max(limit // max(1, len(partitions)), 2 * batch_records)
    fetchable = [p for p in partitions if p not in held_back and held.get(p, 0) < share]
    return fetchable, room
