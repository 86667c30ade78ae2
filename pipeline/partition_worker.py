"""One assigned partition: a bounded queue and an ordered worker (the bulkhead).

Records are handled in batches, not one task per record: a batch is split
into `lanes` by key (one key, one lane, so per-key order holds), the lanes
run concurrently, and the batch's outputs and dead letters are published
together. Offsets count as finished only when those are acknowledged. While
a batch's acknowledgements are outstanding the next batch is already being
handled; the producer keeps their order per partition.

A slow or failing partition only fills its own queue; the runtime then
pauses that partition's fetch and nobody else's.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, cast

from aiokafka import TopicPartition
from pydantic import BaseModel

from pipeline.batch_result import BatchResult, Record
from pipeline.breaker import DependencyError, DependencyUnavailable
from pipeline.codec import HEADER_EVENT_ID, EncodedEvent
from pipeline.delivery import DeliveryList
from pipeline.dlq import VALUE_OMITTED, FloodGuard, describe_error, now_ms
from pipeline.envelope import shown
from pipeline.errors import EventDecodeError, OutputTooLargeError
from pipeline.offset_tracker import OffsetTracker
from pipeline.process_runner import CANCEL_WAIT_S, cancel_and_wait
from pipeline.processor import Context, Handler, PermanentError, Processor, SyncHandler
from pipeline.record_queue import RecordQueue

if TYPE_CHECKING:
    from pipeline.worker import Runtime

log = logging.getLogger("pipeline.worker")

DEPENDENCY_BACKOFF_CAP_S = 5.0
FLOOD_PAUSE_S = 30.0
MAX_PENDING_ACKS = 3
LOGGED_MESSAGE_CHARS = 300

DEAD_ON_ARRIVAL = (EventDecodeError, PermanentError, OutputTooLargeError)
"""Failures no retry can mend: the record is dead-lettered at its first attempt."""


class Abandoned(Exception):
    """The partition is being revoked or the worker stops: leave this batch unfinished."""


class PartitionWorker:
    def __init__(
        self,
        tp: TopicPartition,
        start_offset: int | None,
        processor: Processor,
        runtime: Runtime,
    ) -> None:
        self.tp = tp
        self.processor = processor
        self.runtime = runtime
        self.queue: RecordQueue[Record] = RecordQueue()
        self._next_offset = -1
        """Offset after the last record offered: anything below it was taken already."""
        self._record_bytes = 0.0
        self.tracker = OffsetTracker(start_offset)
        self.flood = FloodGuard()
        self.stopping = asyncio.Event()
        self._wakeup: asyncio.Future[None] | None = None
        """What the idle worker awaits; resolved by new records, an acknowledgement or stop."""
        self._rng = random.Random()
        self.waiting_on_dependency = False
        self._draining = False
        self._salts: list[int] = []
        self.last_progress = time.monotonic()
        self._pending_acks: deque[tuple[asyncio.Future[Any], list[int]]] = deque()
        self.contexts = [
            Context(processor, runtime.breakers, runtime.replica_id, log, runtime.services)
            for _ in range(processor.lanes)
        ]
        self.task = asyncio.ensure_future(self._run())

    # -- intake, called by the fetch loop ------------------------------------

    def offer(self, records: list[Record]) -> None:
        if self._draining or not records:
            return  # being revoked or stopped: the next owner fetches them again
        if records[0].offset < self._next_offset:
            records = self._drop_taken(records)
            if not records:
                return
        self._next_offset = records[-1].offset + 1
        self.queue.extend(records)
        # Sized per fetch, not per record: the bound needs bytes, not precision.
        if records:
            self._record_bytes = _size(records) / len(records)
        self._wake()

    def _drop_taken(self, records: list[Record]) -> list[Record]:
        """Records this partition already took, fetched again, are dropped, not handled twice.

        A seek or an offset reset can move the fetch position back over records
        already queued (a replay's seek to its range start raced the first
        fetch this way); they are in hand, so handling them again would only
        duplicate their outputs.
        """
        fresh = [record for record in records if record.offset >= self._next_offset]
        log.warning(
            "%s-%d: the fetch returned offsets %d..%d, but records up to %d are taken "
            "already (the position moved back); dropping %d record(s) already in hand",
            self.tp.topic,
            self.tp.partition,
            records[0].offset,
            records[-1].offset,
            self._next_offset - 1,
            len(records) - len(fresh),
        )
        return fresh

    def _wake(self, _: object = None) -> None:
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    @property
    def queued_bytes(self) -> float:
        return len(self.queue) * self._record_bytes

    @property
    def held(self) -> int:
        """Records in memory: queued, being handled, or with outputs awaiting acks."""
        return len(self.queue) + self.tracker.in_progress

    @property
    def load(self) -> int:
        """Records not yet committed: queued, or taken and awaiting the commit.

        What the bulkhead's pause and resume marks count (a SIGKILL redoes these);
        `held` counts what is in memory.
        """
        return len(self.queue) + self.tracker.uncommitted

    @property
    def idle(self) -> bool:
        """Nothing queued, nothing taken: every record offered so far is finished."""
        return not self.queue and self.tracker.in_progress == 0 and not self._draining

    def wants_pause(self) -> bool:
        return (
            self.load >= self.processor.queue_records
            or self.queued_bytes >= self.processor.queue_bytes
        )

    def may_resume(self) -> bool:
        return (
            self.load <= self.processor.queue_records // 2
            and self.queued_bytes <= self.processor.queue_bytes // 2
        )

    # -- the ordered worker ---------------------------------------------------

    async def _run(self) -> None:
        try:
            while not self.stopping.is_set():
                if not self.queue:
                    self._settle_done()
                    if self.queue:
                        continue
                    if self._draining:
                        break
                    await self._idle()
                    continue
                room = self.processor.queue_records - self.tracker.uncommitted
                if room < min(len(self.queue), self.processor.batch_records):
                    # The duplicate bound: never hold more uncommitted records.
                    await self._settle_acks(0)
                    if self.processor.queue_records - self.tracker.uncommitted >= min(
                        len(self.queue), self.processor.batch_records
                    ):
                        continue  # exactly-once: the transactions committed them
                    self.runtime.request_commit()
                    await self._wait(self.runtime.committed_signal, 0.5)
                    continue
                batch = self.queue.take(min(room, self.processor.batch_records))
                token = self.tracker.started(batch[0].offset, batch[-1].offset, len(batch))
                try:
                    result = await self._handle(batch)
                except Abandoned:
                    return
                await self._publish(token, result)
                await self._settle_acks(MAX_PENDING_ACKS)
            await self._settle_acks(0)
        except Abandoned:
            return
        except Exception:
            log.exception(
                "partition %s-%d failed with records from offset %d in hand; stopping the worker",
                self.tp.topic,
                self.tp.partition,
                self.tracker.committable,
            )
            self.runtime.fail(f"partition {self.tp.topic}-{self.tp.partition} worker crashed")
            raise

    async def _idle(self) -> None:
        """Wait for new records or the oldest acknowledgement, whichever comes first.

        New records never wait for acks. One plain future, not tasks racing in
        asyncio.wait: a lightly loaded worker idles here hundreds of times a
        second per partition, and at half load those tasks showed as 5-10% of
        its CPU in a profile.
        """
        # Nothing awaits between the caller's empty-queue check and here, so
        # records offered meanwhile are seen by that check, not lost.
        self._wakeup = asyncio.get_running_loop().create_future()
        oldest = self._pending_acks[0][0] if self._pending_acks else None
        if oldest is not None:
            oldest.add_done_callback(self._wake)
        try:
            await self._wakeup
        finally:
            self._wakeup = None
            if oldest is not None:
                oldest.remove_done_callback(self._wake)

    async def _wait(self, event: asyncio.Event, limit_s: float) -> None:
        """Wait for `event` (or time), but wake at once when the partition stops."""
        waiters = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(self.stopping.wait())]
        try:
            await asyncio.wait(waiters, timeout=limit_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def _finished(self, token: list[int]) -> None:
        self.tracker.finished(token)
        self.runtime.room_freed.set()
        if self.runtime.transactions is not None:
            # The transaction committed this offset along with the outputs.
            self.tracker.mark_committed(token[1])
        self.last_progress = time.monotonic()

    def _settle_done(self) -> None:
        """Finish the acknowledged batches at the head, without waiting for others."""
        while self._pending_acks and self._pending_acks[0][0].done():
            acks, token = self._pending_acks.popleft()
            acks.result()  # a failed publish raises: the worker stops, nothing is committed
            self._finished(token)

    async def _sleep(self, seconds: float) -> None:
        """Back off; raise Abandoned if the partition stops meanwhile."""
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        except TimeoutError:
            return
        raise Abandoned

    async def _handle(self, batch: list[Record]) -> BatchResult:
        result = BatchResult(limits=self.runtime.record_path.limits)
        lanes = self.processor.lanes
        if lanes == 1 or len(batch) == 1:
            await self._run_lane(batch, self.contexts[0], result)
            return result
        split: list[list[Record]] = [[] for _ in range(lanes)]
        for record in batch:
            split[hash(record.key) % lanes].append(record)
        await asyncio.gather(
            *(
                self._run_lane(records, self.contexts[i], result)
                for i, records in enumerate(split)
                if records
            )
        )
        return result

    async def _run_lane(self, records: list[Record], ctx: Context, result: BatchResult) -> None:
        """Each record to its outputs or its dead letter; nothing a record holds can stop this."""
        processor = self.processor
        path = self.runtime.record_path
        in_loop = processor.run_in == "loop"
        handler = cast(Handler, processor.handler)
        salts = self._salts
        for record in records:
            ctx.record = record
            ctx.envelope = None
            failures = 0
            dependency_failures = 0
            first_failure = 0
            while True:
                if self.stopping.is_set():
                    raise Abandoned
                ctx.attempt = failures + 1
                try:
                    event, envelope = path.open(record)
                    ctx.envelope = envelope
                    if in_loop:
                        outcome = await handler(event, ctx)
                    else:
                        outcome = await self._call_in_pool(event)
                    result.collect(outcome, envelope.event_id, envelope.trace_id, processor, salts)
                except (DependencyUnavailable, DependencyError) as exc:
                    # The event is fine; the dependency is not. Never dead-letter for it.
                    dependency_failures = await self._back_off(exc, dependency_failures)
                    continue
                except DEAD_ON_ARRIVAL as exc:
                    first_failure = first_failure or now_ms()
                    if await self._dead_letter(record, exc, failures + 1, first_failure, result):
                        break
                    continue
                except Exception as exc:  # noqa: BLE001 - a handler bug: retried, then dead-lettered
                    failures += 1
                    first_failure = first_failure or now_ms()
                    self.runtime.metrics.inc("handler_errors", labels={"error": type(exc).__name__})
                    if failures >= processor.retry.attempts:
                        if await self._dead_letter(record, exc, failures, first_failure, result):
                            break
                        failures = 0
                        continue
                    delay = processor.retry.delay_s(failures, self._rng)
                    self.runtime.retry_log.log(
                        logging.INFO,
                        "%s failed on %s-%d@%d (attempt %d of %d): %s: %s; retrying in %.2fs",
                        processor.name,
                        record.topic,
                        record.partition,
                        record.offset,
                        failures,
                        processor.retry.attempts,
                        type(exc).__name__,
                        describe_error(exc)[0][:LOGGED_MESSAGE_CHARS],
                        delay,
                    )
                    await self._sleep(delay)
                    continue
                if envelope.repair is not None:
                    self.runtime.metrics.inc("envelope_repairs", labels={"repair": envelope.repair})
                result.processed += 1
                break
        self.waiting_on_dependency = False

    async def _call_in_pool(self, event: BaseModel) -> Any:
        processor = self.processor
        executor: Executor = self.runtime.executor_for(processor.run_in)
        sync_handler = cast(SyncHandler, processor.handler)
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
        if self.flood.tripped_by_one_more():
            log.error(
                "FLOOD GUARD: more than %.0f%% of recent records of %s-%d failed; "
                "not dead-lettering offset %d, pausing this partition for %.0fs. "
                "Something systemic is wrong (a bad deploy, a schema change?): last error %s: %s",
                self.flood.max_share * 100,
                record.topic,
                record.partition,
                record.offset,
                FLOOD_PAUSE_S,
                type(error).__name__,
                describe_error(error)[0][:LOGGED_MESSAGE_CHARS],
            )
            self.runtime.metrics.inc("flood_guard_pauses", labels={"topic": record.topic})
            await self._sleep(FLOOD_PAUSE_S)
            self.flood.reset()
            return False
        self.flood.record(True)
        dead = self.runtime.record_path.dead_letter(record, error, attempts, first_failure)
        result.dead_letters.append(dead)
        self.runtime.metrics.inc("dead_lettered", labels={"error": type(error).__name__})
        event_ids = [value for name, value in record.headers if name == HEADER_EVENT_ID]
        shrunk = any(name == VALUE_OMITTED for name, _ in dead.headers)
        self.runtime.dead_letter_log.log(
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

    async def _back_off(self, exc: DependencyUnavailable | DependencyError, failures: int) -> int:
        """Wait out a dependency's failure; the dependency failures counted so far.

        An open breaker says when to come back; a failed call backs off
        exponentially (capped), because the outage may last.
        """
        self.waiting_on_dependency = True
        if isinstance(exc, DependencyUnavailable):
            self.runtime.metrics.inc("dependency_waits", labels={"dependency": exc.name})
            await self._sleep(max(0.05, exc.retry_after_s))
            return failures
        failures += 1
        self.runtime.metrics.inc("dependency_failures", labels={"dependency": exc.name})
        delay = self.processor.retry.delay_s(failures, self._rng)
        await self._sleep(min(DEPENDENCY_BACKOFF_CAP_S, delay))
        return failures

    async def _write_sink(self, items: list[Any]) -> None:
        """Write a batch's sink items, retrying until the sink takes them.

        The sink is a dependency, not the events' fault: failures back off
        and retry without limit (the partition waits, its queue fills and its
        fetch pauses); only stopping the partition abandons the batch.
        """
        sink = self.processor.sink
        assert sink is not None
        breaker = self.runtime.breakers.get(sink.name)
        services = self.runtime.services
        failures = 0
        while True:
            if self.stopping.is_set():
                raise Abandoned
            try:
                await breaker.call(lambda: sink.write(items, services))
            except (DependencyUnavailable, DependencyError) as exc:
                if isinstance(exc, DependencyError):
                    log.warning(
                        "%s-%d: sink %s failed for a batch of %d (failure %d): %s",
                        self.tp.topic,
                        self.tp.partition,
                        sink.name,
                        len(items),
                        failures + 1,
                        exc.__cause__,
                    )
                failures = await self._back_off(exc, failures)
                continue
            self.waiting_on_dependency = False
            self.runtime.metrics.inc("sink_items", len(items), labels={"sink": sink.name})
            return

    async def _publish(self, token: list[int], result: BatchResult) -> None:
        if result.sink_items:
            await self._write_sink(result.sink_items)
        transactions = self.runtime.transactions
        producer = self.runtime.producer
        if transactions is not None:

            async def publish() -> list[asyncio.Future[DeliveryList]]:
                futures = await self._submit_outputs(result)
                if result.dead_letters:
                    dlq_topic = self.processor.source.dlq_name
                    futures.append(await producer.submit_encoded(dlq_topic, result.dead_letters))
                return futures

            done = transactions.submit(self.tp, token[1], publish)
            self._pending_acks.append((done, token))
        else:
            if result.dead_letters:
                await self._publish_dead_letters(result.dead_letters)
            futures = await self._submit_outputs(result)
            self._pending_acks.append((asyncio.gather(*futures) if futures else _done([]), token))
        self.flood.record_ok(result.processed)
        metrics = self.runtime.metrics
        metrics.inc("processed", result.processed)
        metrics.inc("outputs", sum(len(entry[1]) for entry in result.outputs.values()))

    async def _submit_outputs(self, result: BatchResult) -> list[asyncio.Future[DeliveryList]]:
        """Hand a batch's outputs to the producer; futures of their acks."""
        producer = self.runtime.producer
        futures: list[asyncio.Future[DeliveryList]] = []
        for encoder, encoded in result.outputs.values():
            futures.append(await producer.submit_encoded(encoder.spec.name, encoded))
        return futures

    async def _publish_dead_letters(self, records: list[EncodedEvent]) -> None:
        """Publish a batch's dead letters and wait for their acks, retrying until they are kept.

        The DLQ is a dependency like any other: when it cannot take a record
        (the topic is missing, the brokers are away, a limit set lower than
        the worker read) the partition backs off and waits; a crash would
        only bring the same batch back.
        """
        dlq_topic = self.processor.source.dlq_name
        failures = 0
        while True:
            if self.stopping.is_set():
                raise Abandoned
            try:
                await (await self.runtime.producer.submit_encoded(dlq_topic, records))
            except Exception as exc:  # noqa: BLE001 - any failure to keep them: wait and retry
                failures += 1
                self.waiting_on_dependency = True
                self.runtime.metrics.inc("dependency_failures", labels={"dependency": dlq_topic})
                delay = min(
                    DEPENDENCY_BACKOFF_CAP_S, self.processor.retry.delay_s(failures, self._rng)
                )
                log.warning(
                    "%s-%d: %d dead letter(s) could not be published to %s (attempt %d): "
                    "%s: %s; the partition waits and retries in %.1fs "
                    "(is the topic there? `pipeline topics apply` creates it)",
                    self.tp.topic,
                    self.tp.partition,
                    len(records),
                    dlq_topic,
                    failures,
                    type(exc).__name__,
                    describe_error(exc)[0][:LOGGED_MESSAGE_CHARS],
                    delay,
                )
                await self._sleep(delay)
                continue
            self.waiting_on_dependency = False
            return

    async def _settle_acks(self, keep: int) -> None:
        while len(self._pending_acks) > keep:
            acks, token = self._pending_acks[0]
            await acks  # a failed publish raises: the worker stops, nothing is committed
            self._pending_acks.popleft()
            self._finished(token)

    # -- revoke and shutdown ----------------------------------------------------

    async def stop(self, deadline_s: float) -> bool:
        """Finish the batch in hand within the deadline; drop what is only queued.

        Returns whether everything taken was finished (so nothing will be
        redone by the next owner).
        """
        self.queue.clear()
        self._draining = True
        self._wake()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), timeout=deadline_s)
        except TimeoutError:
            log.warning(
                "%s-%d: work in hand did not finish within %.1fs; leaving it uncommitted",
                self.tp.topic,
                self.tp.partition,
                deadline_s,
            )
        except Exception:  # noqa: BLE001 - already logged by the worker task
            pass
        self.stopping.set()
        # A handler stuck in a call that ignores `stopping`: cut it off.
        await cancel_and_wait(
            self.task, CANCEL_WAIT_S, f"the handler on {self.tp.topic}-{self.tp.partition}"
        )
        return self.tracker.in_progress == 0


def _size(records: list[Record]) -> int:
    return sum(r.serialized_value_size + r.serialized_key_size for r in records)


def _done(value: list[DeliveryList]) -> asyncio.Future[list[DeliveryList]]:
    future: asyncio.Future[list[DeliveryList]] = asyncio.get_running_loop().create_future()
    future.set_result(value)
    return future
