"""The one way to open a local RocksDB: bounded if asked, wiped rather than failing."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pipeline.stores.rocks import RocksBounds, open_rocks, wipe_and_reopen

MIB = 1024 * 1024


def test_a_bounded_database_reads_back_what_it_wrote(tmp_path: Path) -> None:
    bounds = RocksBounds(block_cache_bytes=8 * MIB, write_buffer_bytes=4 * MIB, max_write_buffers=2)
    opened = open_rocks(tmp_path / "db", b"1", "store 'totals'", bounds)
    for n in range(5_000):  # more than one small write buffer's worth
        opened.db.put(f"k{n}".encode(), n.to_bytes(4, "big") * 64)
    opened.db.close()
    again = open_rocks(tmp_path / "db", b"1", "store 'totals'", bounds)
    assert again.db.get(b"k4999") == (4999).to_bytes(4, "big") * 64
    assert again.path == tmp_path / "db"
    again.db.close()


def test_another_format_is_wiped_and_said(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    old = open_rocks(tmp_path / "db", b"1", "store 'totals'")
    old.db.put(b"k", b"v")
    old.db.close()
    wiped: list[bool] = []
    with caplog.at_level(logging.WARNING, logger="pipeline.stores"):
        new = open_rocks(
            tmp_path / "db", b"2", "store 'totals'", on_wipe=lambda: wiped.append(True)
        )
    assert wiped == [True]
    assert "store 'totals'" in caplog.text and "wiping it" in caplog.text
    assert new.db.get(b"k") is None
    new.db.close()


def test_a_directory_this_process_holds_gives_way_to_a_private_one(tmp_path: Path) -> None:
    holder = open_rocks(tmp_path / "db", b"1", "cache 'c'")
    holder.db.put(b"k", b"held")
    holder.db.flush()
    wiped: list[bool] = []
    second = open_rocks(tmp_path / "db", b"1", "cache 'c'", on_wipe=lambda: wiped.append(True))
    assert second.path != holder.path and second.path.parent == tmp_path
    assert second.db.get(b"k") is None
    second.db.close()
    assert wiped == [], "a held directory was wiped under its holder"
    assert any((tmp_path / "db").glob("*.sst")), "the holder's files are gone"
    holder.db.close()


def test_damaged_files_are_wiped_and_reopened_empty(tmp_path: Path) -> None:
    opened = open_rocks(tmp_path / "db", b"1", "cache 'c'")
    opened.db.put(b"k", b"v")
    reopened = wipe_and_reopen(opened, b"1", "cache 'c'")
    assert reopened.db.get(b"k") is None
    reopened.db.close()


def latest_options(path: Path) -> str:
    """The OPTIONS file RocksDB writes at each open: what it really runs with."""
    files = sorted(path.glob("OPTIONS-*"), key=lambda f: int(f.name.split("-")[1]))
    return files[-1].read_text()


def test_an_existing_database_reopens_with_the_bounds_given_now(tmp_path: Path) -> None:
    """Quix Streams PR #1137: options were dropped when an existing store was reopened."""
    first = open_rocks(tmp_path / "db", b"1", "store 'totals'", RocksBounds(write_buffer_bytes=MIB))
    first.db.put(b"k", b"v")
    first.db.close()
    assert f"write_buffer_size={MIB}" in latest_options(tmp_path / "db")
    bounds = RocksBounds(write_buffer_bytes=3 * MIB, max_write_buffers=3)
    again = open_rocks(tmp_path / "db", b"1", "store 'totals'", bounds)
    options = latest_options(tmp_path / "db")
    assert f"write_buffer_size={3 * MIB}" in options
    assert "max_write_buffer_number=3" in options
    assert again.db.get(b"k") == b"v"
    again.db.close()


def test_databases_opened_with_shared_bounds_read_through_one_block_cache(tmp_path: Path) -> None:
    """One cache per process, not per partition (Quix Streams PR #1137)."""
    bounds = RocksBounds(block_cache_bytes=8 * MIB).sharing_one_cache()
    cache = bounds.shared_cache
    assert cache is not None
    databases = [open_rocks(tmp_path / f"p{n}", b"1", f"partition {n}", bounds) for n in range(2)]
    try:
        usage = [cache.get_usage()]
        for opened in databases:
            for n in range(2_000):
                opened.db.put(f"k{n}".encode(), b"x" * 100)
            opened.db.flush()
            for n in range(2_000):
                assert opened.db.get(f"k{n}".encode()) == b"x" * 100
            usage.append(cache.get_usage())
        assert usage[0] < usage[1] < usage[2], f"both databases fill the one cache: {usage}"
    finally:
        for opened in databases:
            opened.db.close()
