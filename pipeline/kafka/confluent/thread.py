"""One thread that owns a confluent-kafka Consumer; the event loop hands it calls.

confluent-kafka serialises calls to one Consumer across threads, and
librdkafka runs rebalance callbacks inside `consume()`, on the thread that
called it. So every call goes through this thread's queue, in order, and
nothing the event loop does ever waits for a blocked `consume()`: a pause is
queued, not made. While a rebalance callback waits for the runtime's
listener (which drains partitions and commits them), the thread keeps
serving the queue, so those commits reach the same Consumer without
deadlock.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger("pipeline.kafka.confluent")

T = TypeVar("T")

SERVE_SLICE_S = 0.01
"""The longest the thread blocks at once: how long a queued call can wait behind a fetch."""

_STOP = object()


class _Call:
    __slots__ = ("nestable", "run")

    def __init__(self, run: Callable[[], None], nestable: bool) -> None:
        self.run = run
        self.nestable = nestable


def _settle(future: asyncio.Future[T], result: T | None, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]  # None only when error is set


class ConsumerThread:
    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[_Call | object] = queue.SimpleQueue()
        self._deferred: list[_Call] = []
        """Calls that may not run inside another (a fetch), kept for after it, in order."""
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._stopped = threading.Event()
        self._stopping = False
        """Set by stop(): a call made after it would never run, so it fails at once."""

    def start(self) -> None:
        self._thread.start()

    def call(
        self, function: Callable[..., T], *args: Any, nestable: bool = True
    ) -> asyncio.Future[T]:
        """Run `function(*args)` on the thread after every call queued before it.

        Not `nestable`: never run while another call (a fetch, a rebalance
        callback) is in progress; librdkafka must not be asked to consume
        from inside its own rebalance callback.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._stopping:
            future.set_exception(RuntimeError("the Kafka consumer is closed"))
            return future

        def run() -> None:
            try:
                result = function(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting caller
                loop.call_soon_threadsafe(_settle, future, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, future, result, None)

        self._calls.put(_Call(run, nestable))
        return future

    def post(self, function: Callable[..., object], *args: Any) -> None:
        """Queue a call nobody awaits (pause, resume, seek); a failure is logged."""
        if self._stopping:
            return

        def run() -> None:
            try:
                function(*args)
            except Exception as exc:  # noqa: BLE001 - no caller to raise to: logged
                log.warning("%s failed on the Kafka consumer: %s", function.__name__, exc)

        self._calls.put(_Call(run, True))

    def _run_nested(self, call: _Call) -> None:
        if call.nestable:
            call.run()
        else:
            self._deferred.append(call)

    def serve_pending(self) -> None:
        """Run the calls already queued; only from the thread itself (between fetch slices)."""
        while True:
            try:
                call = self._calls.get_nowait()
            except queue.Empty:
                return
            if call is _STOP:
                self._calls.put(_STOP)
                return
            assert isinstance(call, _Call)
            self._run_nested(call)

    def await_on_loop(
        self, loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, T]
    ) -> T:
        """From the thread (in a rebalance callback): run `coroutine` on the loop, serving calls."""
        done: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coroutine, loop)
        while not done.done():
            try:
                call = self._calls.get(timeout=SERVE_SLICE_S)
            except queue.Empty:
                continue
            if call is _STOP:
                self._calls.put(_STOP)
                done.cancel()
                break
            assert isinstance(call, _Call)
            self._run_nested(call)
        return done.result()

    def stop(self) -> None:
        """Let the queued calls run, then end the thread."""
        self._stopping = True
        self._calls.put(_STOP)

    def join(self, timeout_s: float) -> None:
        self._thread.join(timeout_s)

    def _run(self) -> None:
        try:
            while True:
                while self._deferred:
                    self._deferred.pop(0).run()
                call = self._calls.get()
                if call is _STOP:
                    return
                assert isinstance(call, _Call)
                call.run()
        finally:
            self._stopped.set()
