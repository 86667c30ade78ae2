"""A steady keyed load for a chaos run, from a thread with its own event loop.

The run's own code is synchronous (it signals processes and waits on the
cluster); the load must go on meanwhile at a fixed rate. Each key's events
carry its next sequence number. A batch the cluster does not acknowledge
(a broker just died) is counted, not retried: whether its events were
stored is read back from the input topic, which is the verdict's truth.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from dataclasses import dataclass

from pipeline.catalogue import TopicSpec
from pipeline.chaos.checking import Sequenced
from pipeline.publishing.delivery import DeliveryList
from pipeline.publishing.producer import EventProducer
from pipeline.settings import PipelineSettings

log = logging.getLogger("pipeline.chaos")

TICK_S = 0.1
MAX_UNACKED_BATCHES = 600
"""Beyond this many unacknowledged ticks (a minute) the load waits: a cluster that
takes nothing must not grow the driver's memory without bound. A tick waits for
every partition, so this must outlast a dead leader's failover (~10 s) or the load
would stop for the live partitions too."""


@dataclass
class LoadFigures:
    sent: int = 0
    acknowledged: int = 0
    failed: int = 0
    """Events in batches that were not acknowledged (they may still be stored)."""
    started_at: float = 0.0
    stopped_at: float = 0.0


class SteadyLoad:
    def __init__(
        self, settings: PipelineSettings, topic: TopicSpec[Sequenced], rate: int, keys: int
    ) -> None:
        self.settings = settings
        self.topic = topic
        self.rate = rate
        self.keys = keys
        self.figures = LoadFigures()
        self._next_seq = [0] * keys
        self._key_cursor = 0
        self._blockers: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._error: BaseException | None = None

    def start(self) -> None:
        self.figures.started_at = time.time()
        self._thread = threading.Thread(target=self._run, name="chaos-load", daemon=True)
        self._thread.start()

    def stop(self) -> LoadFigures:
        """Stop sending and wait for the last acknowledgements."""
        if self._stop.is_set():
            return self.figures
        self._stop.set()
        if self._thread is not None:
            self._thread.join(120)
        self.figures.stopped_at = time.time()
        if self._error is not None:
            raise self._error
        return self.figures

    def block_once(self, seconds: float, claim: str) -> None:
        """Send, in the load's order, one event whose handler blocks the event loop (once:
        the handler that takes the `claim` file)."""
        with self._lock:
            self._blockers.append((seconds, claim))

    def _events(self, count: int) -> list[Sequenced]:
        events = []
        with self._lock:
            blockers, self._blockers = self._blockers, []
        for block_s, claim in blockers:
            events.append(self._next(block_s, claim))
        for _ in range(count):
            events.append(self._next())
        return events

    def _next(self, block_s: float = 0.0, claim: str = "") -> Sequenced:
        index = self._key_cursor
        self._key_cursor = (index + 1) % self.keys
        seq = self._next_seq[index]
        self._next_seq[index] = seq + 1
        return Sequenced(
            key=f"key-{index}", seq=seq, block_s=block_s, block_claim=claim, payload="x" * 40
        )

    def _run(self) -> None:
        try:
            asyncio.run(self._drive())
        except BaseException as exc:
            log.exception("the chaos load stopped")
            self._error = exc

    async def _drive(self) -> None:
        pending: set[asyncio.Future[DeliveryList]] = set()
        async with EventProducer(self.settings) as producer:
            started = time.monotonic()
            due = 0.0
            while not self._stop.is_set():
                due += self.rate * TICK_S
                count = int(due) - self.figures.sent
                if count > 0 and len(pending) < MAX_UNACKED_BATCHES:
                    events = self._events(count)
                    self.figures.sent += len(events)
                    try:
                        acks = await producer.submit_many(self.topic, events)
                    except Exception as exc:  # noqa: BLE001 - counted; the topic tells
                        self._failed(len(events), exc)
                    else:
                        acks.add_done_callback(functools.partial(self._settled, count=len(events)))
                        pending.add(acks)
                        acks.add_done_callback(pending.discard)
                elif count > 0:
                    due -= self.rate * TICK_S  # the cluster takes nothing: do not pile up
                ticks = int((time.monotonic() - started) / TICK_S) + 1
                await asyncio.sleep(max(0.0, started + ticks * TICK_S - time.monotonic()))
            if pending:
                await asyncio.wait(pending, timeout=90)

    def _settled(self, done: asyncio.Future[DeliveryList], count: int) -> None:
        if done.cancelled():
            self._failed(count, asyncio.CancelledError())
        elif done.exception() is not None:
            self._failed(count, done.exception())
        else:
            self.figures.acknowledged += count

    def _failed(self, count: int, exc: BaseException | None) -> None:
        self.figures.failed += count
        log.warning("chaos load: %d events not acknowledged: %s", count, exc)
