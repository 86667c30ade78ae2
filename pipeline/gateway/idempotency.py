"""Idempotency-Key: a repeat within the window gets the first answer and publishes nothing.

The key also becomes the event id (a UUID derived from key and topic), so a
repeat that lands on another gateway process, or after the window, is
published again with the same event id, and consumers that upsert by event
id still see it once. The window lives in each process's memory.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from typing import Any

NAMESPACE = uuid.UUID("6d1f4b8e-2c1a-4e0b-9f6e-0d5c3b7a9e21")


def event_id_for(key: str, topic: str, index: int = 0) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{topic}\x00{key}\x00{index}"))


class IdempotencyWindow:
    def __init__(self, window_s: float, max_keys: int) -> None:
        self.window_s = window_s
        self.max_keys = max_keys
        self._answers: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, key: str) -> asyncio.Lock:
        """Serialises concurrent repeats of one key, so only the first publishes."""
        return self._locks.setdefault(key, asyncio.Lock())

    def get(self, key: str) -> Any | None:
        found = self._answers.get(key)
        if found is None:
            return None
        if time.monotonic() - found[0] > self.window_s:
            del self._answers[key]
            return None
        return found[1]

    def release(self, key: str) -> None:
        """Forget the lock of a key that got no answer (its publish failed), unless in use."""
        lock = self._locks.get(key)
        if lock is not None and not lock.locked() and key not in self._answers:
            del self._locks[key]

    def put(self, key: str, answer: Any) -> None:
        self._answers[key] = (time.monotonic(), answer)
        self._answers.move_to_end(key)
        while len(self._answers) > self.max_keys:
            oldest, _ = self._answers.popitem(last=False)
            self._locks.pop(oldest, None)
