"""The pools a replica's `run_in="thread"` and `"process"` handlers run in, made on first use.

One per kind per replica, sized one under the machine's cores: the event
loop keeps a core for fetching, publishing and committing.
"""

from __future__ import annotations

import os
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor


class HandlerPools:
    def __init__(self) -> None:
        self._executors: dict[str, Executor] = {}

    def executor_for(self, kind: str) -> Executor:
        executor = self._executors.get(kind)
        if executor is None:
            workers = max(1, (os.cpu_count() or 2) - 1)
            executor = (
                ProcessPoolExecutor(workers) if kind == "process" else ThreadPoolExecutor(workers)
            )
            self._executors[kind] = executor
        return executor

    def shutdown(self) -> None:
        """Without waiting: a call still running belongs to a record that is redone anyway."""
        for executor in self._executors.values():
            executor.shutdown(wait=False, cancel_futures=True)
