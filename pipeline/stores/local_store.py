"""One store's local copy for one partition: a RocksDB that knows how far into its changelog it is.

Every write carries the changelog offset it reflects, in the same atomic
RocksDB write batch, so a replica that restarts on the same disk reads the
changelog from there (its tail) instead of from the start, and a copy can
never hold a change without knowing it does. Only changes the broker has
acknowledged are written here (pipeline.stores.partition_state): the local
copy is never ahead of its changelog.
"""

from __future__ import annotations

from pathlib import Path

from rocksdict import WriteBatch

from pipeline.stores.rocks import RocksBounds, open_rocks, wipe_and_reopen

FORMAT_TAG = b"state-v1"
DATA_PREFIX = b"d:"
CHANGELOG_POSITION_KEY = b"m:changelog-next"
"""The next changelog offset the copy has not seen: where a restore starts."""


class LocalStore:
    def __init__(self, path: Path, what: str, bounds: RocksBounds) -> None:
        self.what = what
        self._bounds = bounds
        self._opened = open_rocks(path, FORMAT_TAG, what, bounds)
        self.db = self._opened.db

    @property
    def position(self) -> int:
        """The next changelog offset to read; 0 for an empty copy."""
        raw = self.db.get(CHANGELOG_POSITION_KEY)
        return int(raw) if raw is not None else 0

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self.db.get(DATA_PREFIX + key)
        return value

    def scan(self, start: bytes, stop: bytes) -> list[tuple[bytes, bytes]]:
        """Keys in [start, stop) in order, with their values."""
        found = []
        iterator = self.db.iter()
        iterator.seek(DATA_PREFIX + start)
        end = DATA_PREFIX + stop
        while iterator.valid():
            key = iterator.key()
            if key >= end:
                break
            found.append((key[len(DATA_PREFIX) :], iterator.value()))
            iterator.next()
        del iterator
        return found

    def write(self, changes: dict[bytes, bytes | None], next_position: int) -> None:
        """Changes (None: deleted) and the changelog offset after them, atomically."""
        batch = WriteBatch(raw_mode=True)
        for key, value in changes.items():
            if value is None:
                batch.delete(DATA_PREFIX + key)
            else:
                batch.put(DATA_PREFIX + key, value)
        batch.put(CHANGELOG_POSITION_KEY, str(next_position).encode())
        self.db.write(batch)

    def wipe(self) -> None:
        """Start empty: the changelog no longer holds what this copy was built from."""
        self._opened = wipe_and_reopen(self._opened, FORMAT_TAG, self.what, self._bounds)
        self.db = self._opened.db

    def count(self) -> int:
        """Keys held (a scan: for tests and tools, not the hot path)."""
        iterator = self.db.iter()
        iterator.seek(DATA_PREFIX)
        count = 0
        while iterator.valid():
            key = iterator.key()
            if not key.startswith(DATA_PREFIX):
                break
            count += 1
            iterator.next()
        del iterator
        return count

    def close(self) -> None:
        self.db.close()
