"""Kafka's default key partitioning (murmur2), with a cache for hot keys.

Keys must land where the Java client, librdkafka's murmur2_random and every
other well-behaved producer would put them, or per-key order breaks the day
a second producer appears. murmur2 in pure Python costs microseconds per
key; keys repeat (customer ids), so a bounded cache makes it a dict lookup.
"""

from __future__ import annotations

from aiokafka.partitioner import murmur2

CACHE_LIMIT = 200_000

_cache: dict[tuple[bytes, int], int] = {}


def kafka_partition(key: bytes, partition_count: int) -> int:
    """The partition the Java client's default partitioner picks for `key`."""
    cache_key = (key, partition_count)
    partition = _cache.get(cache_key)
    if partition is None:
        partition = (murmur2(key) & 0x7FFFFFFF) % partition_count
        if len(_cache) >= CACHE_LIMIT:
            _cache.clear()
        _cache[cache_key] = partition
    return partition
