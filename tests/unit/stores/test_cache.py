"""The local cache against a real RocksDB directory: TTL, bounds, recovery."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.metrics import Metrics
from pipeline.stores.cache import LocalCache


class Clock:
    def __init__(self) -> None:
        self.now_ms = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now_ms


def test_values_round_trip_through_msgpack(tmp_path: Path) -> None:
    cache = LocalCache(tmp_path / "c")
    cache.put("k", {"name": "Ada", "tier": 3, "tags": ["a", "b"], "ratio": 0.5})
    cache.put(b"raw", b"\x00\xff")
    assert cache.get("k") == {"name": "Ada", "tier": 3, "tags": ["a", "b"], "ratio": 0.5}
    assert cache.get(b"raw") == b"\x00\xff"
    assert cache.get("absent") is None
    assert (cache.stats.hits, cache.stats.misses) == (2, 1)


def test_entries_expire_after_their_ttl(tmp_path: Path) -> None:
    clock = Clock()
    cache = LocalCache(tmp_path / "c", default_ttl_s=10, clock_ms=clock)
    cache.put("short", 1, ttl_s=1)
    cache.put("default", 2)
    clock.now_ms += 1_500
    assert cache.get("short") is None
    assert cache.get("default") == 2
    clock.now_ms += 9_000
    assert cache.get("default") is None
    assert cache.stats.expired == 2
    assert len(cache) == 0


def test_size_bound_evicts_the_oldest_written(tmp_path: Path) -> None:
    clock = Clock()
    cache = LocalCache(tmp_path / "c", max_entries=100, clock_ms=clock)
    for i in range(150):
        clock.now_ms += 1
        cache.put(f"k{i}", i)
    assert len(cache) <= 100
    assert cache.stats.evictions >= 50
    assert cache.get("k149") == 149
    assert cache.get("k0") is None
    # Rewriting an old key makes it the newest: it survives the next eviction.
    oldest_left = min(i for i in range(150) if cache.get(f"k{i}") is not None)
    clock.now_ms += 1
    cache.put(f"k{oldest_left}", "fresh")
    for i in range(150, 200):
        clock.now_ms += 1
        cache.put(f"k{i}", i)
    assert cache.get(f"k{oldest_left}") == "fresh"


def test_age_bound_evicts_entries_written_too_long_ago(tmp_path: Path) -> None:
    clock = Clock()
    cache = LocalCache(tmp_path / "c", max_entries=None, max_age_s=60, clock_ms=clock)
    cache.put_many([(f"old{i}", i) for i in range(20)])
    clock.now_ms += 30_000
    cache.put_many([(f"new{i}", i) for i in range(20)])
    clock.now_ms += 40_000
    assert cache.sweep() == 20
    assert cache.get("old3") is None
    assert cache.get("new3") == 3
    assert len(cache) == 20


def test_counts_survive_reopening(tmp_path: Path) -> None:
    cache = LocalCache(tmp_path / "c")
    cache.put_many([(f"k{i}", i) for i in range(30)])
    cache.put("k1", "again")
    cache.close()
    reopened = LocalCache(tmp_path / "c")
    assert len(reopened) == 30
    assert reopened.get("k1") == "again"


def test_a_deleted_directory_starts_empty(tmp_path: Path) -> None:
    cache = LocalCache(tmp_path / "c")
    cache.put("k", 1)
    cache.close()
    import shutil

    shutil.rmtree(tmp_path / "c")
    fresh = LocalCache(tmp_path / "c")
    assert fresh.get("k") is None
    fresh.put("k", 2)
    assert fresh.get("k") == 2


def test_a_corrupted_directory_is_wiped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = LocalCache(tmp_path / "c")
    cache.put("k", 1)
    cache.close()
    (tmp_path / "c" / "CURRENT").write_bytes(b"MANIFEST-garbage\n")
    for path in (tmp_path / "c").glob("MANIFEST-*"):
        path.write_bytes(b"\x00" * 64)
    metrics = Metrics()
    with caplog.at_level(logging.WARNING, logger="pipeline.cache"):
        rebuilt = LocalCache(tmp_path / "c", metrics=metrics)
    assert "wiping it" in caplog.text
    assert rebuilt.stats.rebuilds == 1
    assert 'pipeline_cache_rebuilds_total{cache="cache"} 1.0' in metrics.render()
    assert rebuilt.get("k") is None
    rebuilt.put("k", 2)
    assert rebuilt.get("k") == 2


def test_a_directory_locked_by_another_process_is_left_to_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from pipeline.stores.cache import LocalCache;"
            f"c = LocalCache(Path({str(tmp_path / 'c')!r})); c.put('k', 1);"
            "print('open', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        with caplog.at_level(logging.WARNING, logger="pipeline.cache"):
            second = LocalCache(tmp_path / "c")
        assert "lock" in caplog.text.lower()
        assert second.path != tmp_path / "c", "it opened the directory another process holds"
        assert second.stats.rebuilds == 0, "the holder's directory was wiped under it"
        assert second.get("k") is None
        second.put("k", 2)
        assert second.get("k") == 2
    finally:
        holder.communicate("")
    assert holder.returncode == 0


def test_a_directory_this_process_holds_falls_back_to_a_private_one(tmp_path: Path) -> None:
    holder = LocalCache(tmp_path / "c")
    holder.put("k", 1)
    second = LocalCache(tmp_path / "c")
    assert second.path != holder.path
    second.put("k", 2)
    assert (holder.get("k"), second.get("k")) == (1, 2)


def test_a_foreign_format_is_wiped(tmp_path: Path) -> None:
    from rocksdict import Options, Rdict

    options = Options(raw_mode=True)
    db = Rdict(str(tmp_path / "c"), options)
    db.put(b"m:format", b"0")
    db.close()
    cache = LocalCache(tmp_path / "c")
    assert cache.stats.rebuilds == 1


async def test_concurrent_misses_share_one_load(tmp_path: Path) -> None:
    cache = LocalCache(tmp_path / "c")
    calls = 0
    release = asyncio.Event()

    async def load() -> dict[str, str]:
        nonlocal calls
        calls += 1
        await release.wait()
        return {"id": "c1"}

    waiters = [asyncio.ensure_future(cache.get_or_load("c1", load)) for _ in range(10)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiters) == [{"id": "c1"}] * 10
    assert calls == 1
    assert await cache.get_or_load("c1", load) == {"id": "c1"}
    assert calls == 1


async def test_a_failing_loader_caches_nothing(tmp_path: Path) -> None:
    cache = LocalCache(tmp_path / "c")

    async def broken() -> None:
        raise ConnectionError("db down")

    async def missing() -> None:
        return None

    with pytest.raises(ConnectionError):
        await cache.get_or_load("k", broken)
    assert await cache.get_or_load("k", missing) is None
    assert len(cache) == 0
