"""A partition's batches through the handler: lanes by key, retries, dead letters, waits.

A batch is split into `lanes` by key (one key, one lane, so per-key order
holds) and the lanes run concurrently. Each record goes through the
per-record fault boundary (pipeline.runtime.record_path): whatever it holds,
it ends as outputs or as one dead letter. Handler errors are retried with
backoff, then dead-lettered; a call past the processor's deadline is
cancelled and counts as a failure (pipeline.runtime.handler_deadline); a
dependency's failure or open breaker makes the partition wait, never
dead-letters an event; when dead letters pass the flood guard's share of
the recent records, it pauses the partition instead
(pipeline.resilience.flood_guard).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Any, TypeVar, cast

from pydantic import BaseModel

from pipeline.errors import EventDecodeError, OutputTooLargeError
from pipeline.kafka.port import Record, SharedRecord, TopicPartition
from pipeline.metric_names import (
    DEAD_LETTERED,
    DEPENDENCY_FAILURES,
    DEPENDENCY_WAITS,
    ENVELOPE_REPAIRS,
    FLOOD_GUARD_PAUSES,
    HANDLER_ERRORS,
    WINDOW_LATE_RECORDS,
)
from pipeline.processor import (
    Context,
    Handler,
    HandlerTimeout,
    PermanentError,
    SyncHandler,
)
from pipeline.queue_delivery import handler_deadline
from pipeline.resilience.breaker import DependencyError, DependencyUnavailable
from pipeline.resilience.flood_guard import FloodGuard
from pipeline.resilience.waiting import BREAKER_RECHECK_FLOOR_S, pause, until_done
from pipeline.runtime.batch_result import BatchResult
from pipeline.runtime.dead_letters import describe_error, now_ms
from pipeline.runtime.handler_deadline import HandlerDeadline, LaneClock
from pipeline.runtime.host import Abandoned, HandlingParts
from pipeline.runtime.outcomes import Released
from pipeline.stores.partition_state import PartitionState
from pipeline.stores.windows import LateEventError
from pipeline.telemetry import tracing
from pipeline.telemetry.logs import fields_from
from pipeline.undeclared import UndeclaredDependencyError, UndeclaredStoreError
from pipeline.wire.codec import HEADER_EVENT_ID
from pipeline.wire.dlq_headers import VALUE_OMITTED
from pipeline.wire.envelope import shown

log = logging.getLogger("pipeline.worker")

DEPENDENCY_BACKOFF_CAP_S = 5.0
LOGGED_MESSAGE_CHARS = 300
T = TypeVar("T")

DEAD_ON_ARRIVAL = (EventDecodeError, PermanentError, OutputTooLargeError, LateEventError)
"""Failures no retry can mend: the record is dead-lettered at its first attempt."""


class BatchHandler:
    def __init__(
        self,
        tp: TopicPartition,
        parts: HandlingParts,
        stopping: asyncio.Event,
        state: PartitionState | None = None,
        releases: bool = False,
    ) -> None:
        self.tp = tp
        self.releases = releases
        """Queue mode: attempt n is a record's n-th delivery, and a retry a release."""
        self.state = state
        """The partition's stores (None: the processor declares none)."""
        self.parts = parts
        self.processor = parts.processor
        self.stopping = stopping
        policy = self.processor.flood_guard
        self.flood = FloodGuard(policy) if policy is not None else None
        self.deadline = HandlerDeadline(handler_deadline(self.processor), self.processor.lanes)
        self.waiting_on_dependency = False
        """True while the partition waits for a dependency: slow, not stuck (liveness)."""
        self.handling: tuple[int, int] | None = None
        """The first and last offset of the batch in the handler now."""
        self._rng = random.Random()
        self._salts: list[int] = []
        self.contexts = [
            Context(self.processor, parts.breakers, parts.replica_id, log, parts.services)
            for _ in range(self.processor.lanes)
        ]
        late = parts.metrics.counter_of(WINDOW_LATE_RECORDS, "window")
        if state is not None:
            for ctx in self.contexts:
                ctx.use_state(state, late)

    async def sleep(self, seconds: float) -> None:
        """Back off; raise Abandoned if the partition stops meanwhile."""
        await pause(seconds, self.stopping)

    async def wait_on(
        self,
        dependency: str,
        attempt: Callable[[], Awaitable[T]],
        retry_on: type[BaseException] | tuple[type[BaseException], ...],
        log_failure: Callable[[BaseException, int, float], None],
    ) -> T:
        """`attempt`'s result, tried until `dependency` takes it; the partition waits meanwhile.

        While it waits the partition is slow, not stuck: the liveness check
        leaves it alone, and the waits and failures are counted per
        dependency. Abandoned when the partition stops.
        """

        def failed(exc: BaseException, failures: int, delay: float) -> None:
            self.waiting_on_dependency = True
            self._count_dependency(exc, dependency)
            log_failure(exc, failures, delay)

        result = await until_done(
            attempt,
            retry_on=retry_on,
            delay_s=self.retry_delay,
            stopping=self.stopping,
            on_failure=failed,
        )
        self.waiting_on_dependency = False
        return result

    def _count_dependency(self, exc: BaseException, dependency: str) -> None:
        """An open breaker is a wait, anything else a failure."""
        if isinstance(exc, DependencyUnavailable):
            self.parts.metrics.inc(DEPENDENCY_WAITS, labels={"dependency": exc.name})
        else:
            self.parts.metrics.inc(DEPENDENCY_FAILURES, labels={"dependency": dependency})

    async def handle(self, batch: list[Record]) -> BatchResult:
        result = BatchResult(limits=self.parts.record_path.limits)
        lanes = self.processor.lanes
        self.deadline.arm()
        self.handling = (batch[0].offset, batch[-1].offset)
        try:
            if lanes == 1 or len(batch) == 1:
                await self._run_lane(batch, 0, result)
            else:
                split: list[list[Record]] = [[] for _ in range(lanes)]
                for record in batch:
                    split[hash(record.key) % lanes].append(record)
                await asyncio.gather(
                    *(self._run_lane(rs, i, result) for i, rs in enumerate(split) if rs)
                )
            if self.state is not None:
                result.state_changes = self.state.end_batch()
            return result
        finally:
            self.deadline.disarm()
            self.handling = None

    def in_hand(self) -> list[int]:
        """Offsets of the records in a handler call now, one per lane at most (read by the
        frozen-loop watchdog from its thread: a snapshot, good enough for a last word)."""
        if self.handling is None:
            return []
        first, last = self.handling
        current = (ctx.record for ctx in self.contexts)
        return sorted({r.offset for r in current if r is not None and first <= r.offset <= last})

    async def _run_lane(self, records: list[Record], lane: int, result: BatchResult) -> None:
        ctx = self.contexts[lane]
        clock = self.deadline.lanes[lane]
        clock.task = asyncio.current_task()
        with fields_from(ctx.log_fields):
            await self._run_records(records, ctx, clock, result)

    async def _run_records(
        self, records: list[Record], ctx: Context, clock: LaneClock, result: BatchResult
    ) -> None:
        """Each record to its outputs or its dead letter; nothing a record holds can stop this."""
        processor = self.processor
        path = self.parts.record_path
        in_loop = processor.run_in == "loop"
        handler = cast(Handler[Any], processor.handler)
        salts = self._salts
        traced = tracing.enabled()
        flood = self.flood
        deadline = self.deadline
        loop_time = asyncio.get_running_loop().time
        stateful = self.state is not None
        for record in records:
            ctx.record = record
            ctx.envelope = None
            failures = cast(SharedRecord, record).delivery_count - 1 if self.releases else 0
            dependency_failures = 0
            first_failure = 0
            while True:
                if self.stopping.is_set():
                    raise Abandoned
                ctx.attempt = failures + 1
                if stateful:
                    ctx.discard_writes()
                try:
                    if path.reads_registry:
                        await path.fetch_schema(record)
                    event, envelope = path.open(record)
                    ctx.envelope = envelope
                    parent = envelope.traceparent
                    clock.started = loop_time()
                    try:
                        if traced:
                            with tracing.handling(
                                processor.name,
                                record.topic,
                                record.partition,
                                record.offset,
                                parent,
                            ) as span:
                                outcome = await self._call(handler, event, ctx, in_loop)
                            parent = tracing.traceparent_of(span)
                        elif in_loop:
                            outcome = await handler(event, ctx)
                        else:
                            outcome = await self._call_in_pool(event)
                    except asyncio.CancelledError:
                        timeout = deadline.timed_out(clock, record)
                        if timeout is None:
                            raise
                        self._log_timeout(record, timeout, failures)
                        raise timeout from None
                    finally:
                        deadline.ended(clock)
                    result.collect(
                        outcome, envelope.event_id, envelope.trace_id, processor, salts, parent
                    )
                except (UndeclaredDependencyError, UndeclaredStoreError) as exc:
                    # The code's fault, the same for every record: stop, dead-letter nothing.
                    self.parts.fail(str(exc))
                    raise Abandoned from exc
                except (DependencyUnavailable, DependencyError) as exc:
                    # The event is fine; the dependency is not. Never dead-letter for it.
                    dependency_failures = await self.back_off(exc, dependency_failures)
                    continue
                except DEAD_ON_ARRIVAL as exc:
                    first_failure = first_failure or now_ms()
                    if await self._dead_letter(record, exc, failures + 1, first_failure, result):
                        break
                    continue
                except Exception as exc:  # a handler bug: retried (queue: released), then DLQ
                    failures += 1
                    first_failure = first_failure or now_ms()
                    self.parts.metrics.inc(HANDLER_ERRORS, labels={"error": type(exc).__name__})
                    if failures >= processor.retry.attempts:
                        if await self._dead_letter(record, exc, failures, first_failure, result):
                            break
                        failures = 0
                        continue
                    await self._retry_later(record, exc, failures)
                    if self.releases:
                        raise Released from exc
                    continue
                if envelope.repair is not None:
                    self.parts.metrics.inc(ENVELOPE_REPAIRS, labels={"repair": envelope.repair})
                result.processed += 1
                if stateful:
                    ctx.keep_writes()
                if flood is not None:
                    flood.record(False)
                break
        self.waiting_on_dependency = False

    def _log_timeout(self, record: Record, timeout: HandlerTimeout, failures: int) -> None:
        """The first timeout of a record, at WARNING: the place of a hang is worth a line."""
        if failures:
            return  # its retries are logged (rate-limited) like any other
        log.warning(
            "%s: the handler ran past its deadline of %gs on %s-%d@%d and was cancelled "
            "(attempt 1 of %d; retried, then dead-lettered as HandlerTimeout)",
            self.processor.name,
            timeout.timeout_s,
            record.topic,
            record.partition,
            record.offset,
            self.processor.retry.attempts,
        )

    async def _retry_later(self, record: Record, error: Exception, failures: int) -> None:
        processor = self.processor
        delay = processor.retry.delay_s(failures, self._rng)
        self.parts.retry_log.log(
            logging.INFO,
            "%s failed on %s-%d@%d (attempt %d of %d): %s: %s; retrying in %.2fs",
            processor.name,
            record.topic,
            record.partition,
            record.offset,
            failures,
            processor.retry.attempts,
            type(error).__name__,
            describe_error(error)[0][:LOGGED_MESSAGE_CHARS],
            delay,
        )
        await self.sleep(delay)

    async def _call(
        self, handler: Handler[Any], event: BaseModel, ctx: Context, in_loop: bool
    ) -> Any:
        if in_loop:
            return await handler(event, ctx)
        return await self._call_in_pool(event)

    async def _call_in_pool(self, event: BaseModel) -> Any:
        processor = self.processor
        executor: Executor = self.parts.executor_for(processor.run_in)
        sync_handler = cast(SyncHandler[Any], processor.handler)
        return await asyncio.get_running_loop().run_in_executor(executor, sync_handler, event)

    async def _dead_letter(
        self,
        record: Record,
        error: BaseException,
        attempts: int,
        first_failure: int,
        result: BatchResult,
    ) -> bool:
        """Queue a DLQ record; False when the flood guard says to pause instead."""
        flood = self.flood
        if flood is not None and flood.trips_on_one_more():
            policy = flood.policy
            log.error(
                "FLOOD GUARD: more than %.0f%% of the last %d records of %s-%d failed; "
                "not dead-lettering offset %d, pausing this partition for %.0fs. "
                "Something systemic is wrong (a bad deploy, a schema change?): last error %s: %s "
                "(Processor.flood_guard sets the share, window and pause; None turns it off)",
                policy.max_share * 100,
                policy.window,
                record.topic,
                record.partition,
                record.offset,
                policy.pause_s,
                type(error).__name__,
                describe_error(error)[0][:LOGGED_MESSAGE_CHARS],
            )
            self.parts.metrics.inc(FLOOD_GUARD_PAUSES, labels={"topic": record.topic})
            await self.sleep(policy.pause_s)
            flood.reset()
            return False
        if flood is not None:
            flood.record(True)
        dead = self.parts.record_path.dead_letter(record, error, attempts, first_failure)
        result.dead_letters.append(dead)
        self.parts.metrics.inc(DEAD_LETTERED, labels={"error": type(error).__name__})
        event_ids = [value for name, value in record.headers if name == HEADER_EVENT_ID]
        shrunk = any(name == VALUE_OMITTED for name, _ in dead.headers)
        self.parts.dead_letter_log.log(
            logging.WARNING,
            "dead-lettered %s-%d@%d (processor %s, event-id %s, %d attempt(s)) to %s%s: %s: %s",
            record.topic,
            record.partition,
            record.offset,
            self.processor.name,
            shown(event_ids[-1]) if event_ids else "none",
            attempts,
            self.processor.source.dlq_name,
            " with its value left out (over the DLQ topic's limit)" if shrunk else "",
            type(error).__name__,
            describe_error(error)[0][:LOGGED_MESSAGE_CHARS],
        )
        return True

    async def back_off(self, exc: DependencyUnavailable | DependencyError, failures: int) -> int:
        """Wait out a dependency's failure; the dependency failures counted so far.

        An open breaker says when to come back; a failed call backs off
        exponentially (capped), because the outage may last.
        """
        self.waiting_on_dependency = True
        self._count_dependency(exc, exc.name)
        if isinstance(exc, DependencyUnavailable):
            await self.sleep(max(BREAKER_RECHECK_FLOOR_S, exc.retry_after_s))
            return failures
        failures += 1
        await self.sleep(self.retry_delay(failures))
        return failures

    def retry_delay(self, failures: int) -> float:
        """How long to wait after the `failures`-th failure of something retried forever."""
        return min(DEPENDENCY_BACKOFF_CAP_S, self.processor.retry.delay_s(failures, self._rng))
