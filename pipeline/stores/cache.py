"""A local RocksDB cache (rocksdict) in front of slow lookups.

The cache is an optimisation and never the source of truth: a replica
started with its cache deleted works the same, only slower, and a cache
directory that cannot be opened (corrupted, half-written by a killed
process, left by an incompatible version) is wiped and rebuilt with a
warning instead of failing the worker again at every restart
(pipeline.stores.rocks, shared with every local RocksDB of the project).

Values are msgpack in raw-bytes mode: rocksdict's default pickles every
value, which costs about 2.4 times as much per get. Each entry carries the
time it was written and when it expires; a second key space ordered by
write time lets the size and age bounds evict the oldest entries without
scanning the whole store.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
from rocksdict import Rdict, WriteBatch

from pipeline.errors import PipelineError
from pipeline.metric_names import MetricName
from pipeline.metrics import Labels, Metrics
from pipeline.stores.rocks import UNBOUNDED, RocksBounds, open_rocks, wipe_and_reopen

log = logging.getLogger("pipeline.cache")

FORMAT = b"1"
VALUE_PREFIX = b"v:"
AGE_PREFIX = b"t:"
AGE_END = b"t;"  # the byte after ':' bounds the age key space
_STAMP = struct.Struct(">Q")
_unpackb = msgpack.unpackb  # strings as str, bytes as bytes: msgpack's defaults
EVICT_SLACK = 0.05
"""Evict this share below the bound at once, so a full cache does not evict on every put."""


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    expired: int = 0
    evictions: int = 0
    loads: int = 0
    rebuilds: int = 0

    @property
    def hit_ratio(self) -> float:
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0


def _key(key: str | bytes) -> bytes:
    return key if isinstance(key, bytes) else key.encode()


def _now_ms() -> int:
    return int(time.time() * 1000)


class LocalCache:
    """Get, put and get-or-load with per-entry TTL, bounded by size and by age."""

    def __init__(
        self,
        path: Path,
        *,
        name: str = "cache",
        max_entries: int | None = 1_000_000,
        max_age_s: float | None = None,
        default_ttl_s: float | None = None,
        metrics: Metrics | None = None,
        clock_ms: Callable[[], int] = _now_ms,
        bounds: RocksBounds = UNBOUNDED,
    ) -> None:
        if max_entries is not None and max_entries < 1:
            raise PipelineError(f"cache {name!r}: max_entries must be at least 1")
        self.path = path
        self.name = name
        self.max_entries = max_entries
        self.max_age_ms = None if max_age_s is None else int(max_age_s * 1000)
        self.default_ttl_s = default_ttl_s
        self.stats = CacheStats()
        self._clock_ms = clock_ms
        self._loading: dict[bytes, asyncio.Future[Any]] = {}
        self._next_age_sweep_ms = 0
        self._what = f"cache {name!r}"
        self._bounds = bounds
        self._db = self._open()
        self._count = self._count_entries()
        if metrics is not None:
            self._export(metrics)

    # -- opening, and recovering from a directory that will not open ----------

    def _open(self) -> Rdict:
        """Opened, or wiped and opened empty (pipeline.stores.rocks): lookups are slower
        until it warms up again, never failing."""
        opened = open_rocks(
            self.path, FORMAT, self._what, self._bounds, on_wipe=lambda: self._record("rebuilds")
        )
        self._opened = opened
        self.path = opened.path
        return opened.db

    def _age_keys(self) -> Iterator[bytes]:
        """Index keys, oldest write first."""
        for key in self._db.keys(from_key=AGE_PREFIX):
            assert isinstance(key, bytes)  # raw mode
            if key >= AGE_END:
                return
            yield key

    def _count_entries(self) -> int:
        return sum(1 for _ in self._age_keys())

    def _rebuild_after(self, exc: Exception) -> None:
        """A read or write failed inside RocksDB: the files are damaged. Start empty."""
        log.warning(
            "%s at %s failed (%s: %s); wiping it and starting empty",
            self._what,
            self.path,
            type(exc).__name__,
            exc,
        )
        self._record("rebuilds")
        self._opened = wipe_and_reopen(self._opened, FORMAT, self._what, self._bounds)
        self.path = self._opened.path
        self._db = self._opened.db
        self._count = 0

    def close(self) -> None:
        self._db.close()

    def __len__(self) -> int:
        return self._count

    # -- reads and writes --------------------------------------------------------

    def get(self, key: str | bytes) -> Any | None:
        """The cached value, or None when absent or expired."""
        # The hot path of every lookup: no helper calls, no keyword arguments.
        raw_key = VALUE_PREFIX + (key if key.__class__ is bytes else key.encode())  # type: ignore[union-attr]
        try:
            stored = self._db.get(raw_key)
        except Exception as exc:  # noqa: BLE001 - damaged files: rebuild, report a miss
            self._rebuild_after(exc)
            stored = None
        if stored is None:
            self.stats.misses += 1
            return None
        written_ms, expires_ms, value = _unpackb(stored)
        if expires_ms and expires_ms <= self._clock_ms():
            self._remove(raw_key, written_ms)
            self.stats.expired += 1
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        return value

    def put(self, key: str | bytes, value: Any, ttl_s: float | None = None) -> None:
        """Store `value` (anything msgpack encodes); `ttl_s` overrides the default TTL."""
        self.put_many([(key, value)], ttl_s)

    def put_many(self, items: list[tuple[str | bytes, Any]], ttl_s: float | None = None) -> None:
        """One write batch for many entries: what a table follower does per fetch."""
        now = self._clock_ms()
        ttl = self.default_ttl_s if ttl_s is None else ttl_s
        expires = now + int(ttl * 1000) if ttl else 0
        batch = WriteBatch(raw_mode=True)
        added = 0
        # The last value of a key wins; the batch must not index one key twice.
        latest = {VALUE_PREFIX + _key(key): value for key, value in items}
        for raw_key, value in latest.items():
            old = self._db.get(raw_key)
            if old is None:
                added += 1
            else:
                batch.delete(AGE_PREFIX + _STAMP.pack(msgpack.unpackb(old)[0]) + raw_key[2:])
            batch.put(raw_key, msgpack.packb([now, expires, value], use_bin_type=True))
            batch.put(AGE_PREFIX + _STAMP.pack(now) + raw_key[2:], b"")
        try:
            self._db.write(batch)
        except Exception as exc:  # noqa: BLE001 - damaged files: rebuild, drop this write
            self._rebuild_after(exc)
            return
        self._count += added
        self._enforce_bounds(now)

    def delete(self, key: str | bytes) -> None:
        raw_key = VALUE_PREFIX + _key(key)
        old = self._db.get(raw_key)
        if old is not None:
            self._remove(raw_key, msgpack.unpackb(old)[0])

    def _remove(self, raw_key: bytes, written_ms: int) -> None:
        batch = WriteBatch(raw_mode=True)
        batch.delete(raw_key)
        batch.delete(AGE_PREFIX + _STAMP.pack(written_ms) + raw_key[2:])
        self._db.write(batch)
        self._count -= 1

    async def get_or_load(
        self,
        key: str | bytes,
        loader: Callable[[], Awaitable[Any | None]],
        ttl_s: float | None = None,
    ) -> Any | None:
        """The cached value, or the loader's (stored unless None).

        Concurrent misses for one key share a single load, so a hot key
        that expires does not send a burst of identical queries downstream.
        A loader's exception propagates to every waiter and caches nothing.
        """
        value = self.get(key)
        if value is not None:
            return value
        raw = _key(key)
        pending = self._loading.get(raw)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._loading[raw] = future
        try:
            self._record("loads")
            value = await loader()
            if value is not None:
                self.put(raw, value, ttl_s)
            future.set_result(value)
            return value
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        finally:
            del self._loading[raw]

    # -- bounds ------------------------------------------------------------------

    def _enforce_bounds(self, now_ms: int) -> None:
        if self.max_entries is not None and self._count > self.max_entries:
            target = int(self.max_entries * (1 - EVICT_SLACK))
            self._evict_oldest(self._count - target, before_ms=None)
        if self.max_age_ms is not None and now_ms >= self._next_age_sweep_ms:
            # Sweeping is a scan from the oldest entry; at most ten per max age.
            self._next_age_sweep_ms = now_ms + max(1, self.max_age_ms // 10)
            self._evict_oldest(None, before_ms=now_ms - self.max_age_ms)

    def sweep(self) -> int:
        """Apply the age bound now; the number of entries evicted."""
        if self.max_age_ms is None:
            return 0
        return self._evict_oldest(None, before_ms=self._clock_ms() - self.max_age_ms)

    def _evict_oldest(self, count: int | None, before_ms: int | None) -> int:
        batch = WriteBatch(raw_mode=True)
        evicted = 0
        for age_key in self._age_keys():
            if count is not None and evicted >= count:
                break
            if before_ms is not None and _STAMP.unpack_from(age_key, 2)[0] >= before_ms:
                break
            batch.delete(age_key)
            batch.delete(VALUE_PREFIX + age_key[2 + _STAMP.size :])
            evicted += 1
        if evicted:
            self._db.write(batch)
            self._count -= evicted
            self._record("evictions", evicted)
        return evicted

    def _record(self, what: str, amount: int = 1) -> None:
        setattr(self.stats, what, getattr(self.stats, what) + amount)

    def _export(self, metrics: Metrics) -> None:
        labels = (("cache", self.name),)
        metrics.gauge("cache_entries", lambda: {labels: float(self._count)})
        counters: tuple[tuple[MetricName, str], ...] = (
            ("cache_hits", "hits"),
            ("cache_misses", "misses"),
            ("cache_expired", "expired"),
            ("cache_evictions", "evictions"),
            ("cache_loads", "loads"),
            ("cache_rebuilds", "rebuilds"),
        )
        for name, what in counters:
            metrics.counters_from(name, self._stat_reader(labels, what))

    def _stat_reader(self, labels: Labels, what: str) -> Callable[[], dict[Labels, float]]:
        return lambda: {labels: float(getattr(self.stats, what))}
