"""Kafka's default key partitioning (murmur2), with a cache for hot keys.

Keys must land where the Java client, librdkafka's murmur2_random and every
other well-behaved producer would put them, or per-key order breaks the day
a second producer appears. murmur2 in pure Python costs microseconds per
key; keys repeat (customer ids), so a bounded cache makes it a dict lookup.
"""

from __future__ import annotations

import struct

CACHE_LIMIT = 200_000
MASK = 0xFFFFFFFF

_cache: dict[tuple[bytes, int], int] = {}


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as an unsigned 32-bit int.

    Ours rather than a client's: every adapter and the in-memory broker must
    place a key exactly where the Java client does.
    """
    multiplier, shift = 0x5BD1E995, 24
    length = len(data)
    digest = (0x9747B28C ^ length) & MASK
    whole = length - length % 4
    for (word,) in struct.iter_unpack("<I", data[:whole]):
        word = (word * multiplier) & MASK
        word ^= word >> shift
        word = (word * multiplier) & MASK
        digest = ((digest * multiplier) & MASK) ^ word
    tail = data[whole:]
    if len(tail) >= 3:
        digest ^= tail[2] << 16
    if len(tail) >= 2:
        digest ^= tail[1] << 8
    if tail:
        digest ^= tail[0]
        digest = (digest * multiplier) & MASK
    digest ^= digest >> 13
    digest = (digest * multiplier) & MASK
    digest ^= digest >> 15
    return digest


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
