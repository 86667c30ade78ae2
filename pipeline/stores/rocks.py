"""One way to open a local RocksDB (rocksdict) that is never the source of truth.

The cache rebuilds from its loader, and a state store will rebuild from
its changelog: for both, a directory that cannot be opened (corrupted,
half-written by a killed process, written by an incompatible version) is
wiped and opened empty, with a warning, rather than failing the worker
again at every restart. Each database carries a format tag, so a version
that would misread an old one starts empty instead. Memory can be bounded
(`RocksBounds`): RocksDB's block cache and write buffers grow with the
data unless told otherwise, whatever the number of keys.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from rocksdict import BlockBasedOptions, Cache, Options, Rdict

from pipeline.errors import PipelineError

log = logging.getLogger("pipeline.stores")

FORMAT_KEY = b"m:format"


class RocksOpenError(PipelineError):
    """The directory could not be opened even after wiping it."""


@dataclass(frozen=True)
class RocksBounds:
    """Memory RocksDB may use for one database; None keeps RocksDB's own default.

    With `shared_cache`, every database opened with these bounds reads through
    one block cache of `block_cache_bytes` (`sharing_one_cache`): a process
    with a hundred partitions' stores holds one cache, not a hundred.
    """

    block_cache_bytes: int | None = None
    write_buffer_bytes: int | None = None
    max_write_buffers: int | None = None
    shared_cache: Cache | None = field(default=None, compare=False)

    def sharing_one_cache(self) -> RocksBounds:
        """These bounds, with one block cache made now for every database opened with them."""
        if self.block_cache_bytes is None:
            return self
        return replace(self, shared_cache=Cache(self.block_cache_bytes))


UNBOUNDED = RocksBounds()
"""RocksDB's own defaults: a cache that a user bounds by entries, not by bytes."""


def rocks_options(bounds: RocksBounds) -> Options:
    """Raw bytes in and out (rocksdict's default pickles every value), within `bounds`."""
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    if bounds.write_buffer_bytes is not None:
        options.set_write_buffer_size(bounds.write_buffer_bytes)
    if bounds.max_write_buffers is not None:
        options.set_max_write_buffer_number(bounds.max_write_buffers)
    if bounds.block_cache_bytes is not None:
        table = BlockBasedOptions()
        table.set_block_cache(bounds.shared_cache or Cache(bounds.block_cache_bytes))
        options.set_block_based_table_factory(table)
    return options


@dataclass
class OpenedRocks:
    db: Rdict
    path: Path
    """Where it opened: the path asked for, or a private one beside it (see `open_rocks`)."""


def open_rocks(
    path: Path,
    format_tag: bytes,
    what: str,
    bounds: RocksBounds = UNBOUNDED,
    on_wipe: Callable[[], None] = lambda: None,
) -> OpenedRocks:
    """Open `path`, wiping it once if it will not open or holds another format.

    A directory whose lock another process (or this one) holds is not wiped
    under its holder: this process uses a private directory beside it
    instead, as it does if even the wiped directory will not open. `what`
    names the database in the warnings ("cache 'customers'"); `on_wipe` is
    told each time a directory is wiped.
    """
    try:
        return OpenedRocks(_open_checked(path, format_tag, bounds), path)
    except Exception as exc:  # noqa: BLE001 - any failure to open means: rebuild
        failure: Exception = exc
    if not _locked(failure):
        log.warning(
            "%s at %s cannot be used (%s: %s); wiping it and starting empty",
            what,
            path,
            type(failure).__name__,
            failure,
        )
        on_wipe()
        shutil.rmtree(path, ignore_errors=True)
        try:
            return OpenedRocks(_open_checked(path, format_tag, bounds), path)
        except Exception as again:  # noqa: BLE001 - e.g. another process took the lock
            failure = again
    private = path.with_name(f"{path.name}.{os.getpid()}")
    log.warning(
        "%s at %s cannot be opened (%s); using %s for this process",
        what,
        path,
        failure,
        private,
    )
    shutil.rmtree(private, ignore_errors=True)
    try:
        return OpenedRocks(_open_checked(private, format_tag, bounds), private)
    except Exception as again:
        raise RocksOpenError(
            f"{what} at {private} cannot be opened even after wiping it ({again}); check "
            "that the disk is writable and that no other process with the same replica id "
            "uses this directory"
        ) from again


def _locked(exc: Exception) -> bool:
    """RocksDB's answer when another handle holds the directory's LOCK file."""
    return "lock" in str(exc).lower()


def wipe_and_reopen(
    opened: OpenedRocks, format_tag: bytes, what: str, bounds: RocksBounds = UNBOUNDED
) -> OpenedRocks:
    """After a read or write failed inside RocksDB (damaged files): start empty."""
    try:
        opened.db.close()
    except Exception as close_error:  # noqa: BLE001 - closing a damaged store may fail too
        log.debug("closing damaged %s at %s failed: %s", what, opened.path, close_error)
    shutil.rmtree(opened.path, ignore_errors=True)
    return open_rocks(opened.path, format_tag, what, bounds)


def _open_checked(path: Path, format_tag: bytes, bounds: RocksBounds) -> Rdict:
    path.mkdir(parents=True, exist_ok=True)
    options = rocks_options(bounds)
    # Named for the default column family too: reopening a directory, rocksdict would
    # otherwise load that family's options (write buffers, block cache) from the last
    # OPTIONS file, and the bounds given now would be dropped (Quix Streams PR #1137).
    db = Rdict(str(path), options, column_families={"default": options})
    stored = db.get(FORMAT_KEY)
    if stored is None:
        db.put(FORMAT_KEY, format_tag)
    elif stored != format_tag:
        db.close()
        raise RocksOpenError(f"format {stored!r}, this version writes {format_tag!r}")
    return db
