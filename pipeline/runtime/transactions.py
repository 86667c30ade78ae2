"""Exactly-once: a batch's outputs and its source offsets in one Kafka transaction.

A producer has one open transaction at a time, and a worker has many
partitions; so partitions hand their finished batches to this one publisher,
which puts everything that is waiting into the next transaction: begin, send
each batch's outputs and dead letters, add each partition's new offset,
commit. Consumers that read with isolation `read_committed` then see each
input's outputs exactly once, even when a worker dies mid-batch.

Fencing: the transactional id is the group plus the replica id, so a replica
restarted under the same id fences its predecessor. A replica that is cut
off (not restarted, e.g. frozen past its session timeout) while its
partitions move is fenced by KIP-447 on the confluent client: its offsets
carry the group generation it had, and the coordinator refuses them, so its
transaction aborts. On aiokafka (offsets sent with the group id only) it is
not; so before adding a transaction's offsets this publisher asks the
membership guard (pipeline.runtime.membership): after the loop stood still
longer than the session, a refused membership check aborts the transaction
(its outputs are never seen by read_committed readers) and abandons its
batches to their new owner. A freeze between that check and the commit,
milliseconds, is the window left; the confluent client has none.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pipeline.kafka.port import TopicPartition
from pipeline.publishing.delivery import DeliveryList
from pipeline.publishing.producer import EventProducer
from pipeline.resilience.tasks import CANCEL_WAIT_S, cancel_and_wait
from pipeline.runtime.outcomes import Abandoned

log = logging.getLogger("pipeline.transactions")

Publish = Callable[[], Awaitable[list[asyncio.Future[DeliveryList]]]]
GroupMetadata = Callable[[], Awaitable[object]]
"""The consumer's group_metadata, asked again for each transaction (the generation changes)."""
StillMember = Callable[[], Awaitable[bool]]
"""False when the group dropped this replica during a stall (MembershipGuard.publishable)."""


async def _always_member() -> bool:
    return True


class _Dropped(Exception):
    """The group moved on while this transaction was open."""


@dataclass
class _Submission:
    tp: TopicPartition
    end_offset: int
    publish: Publish
    done: asyncio.Future[None]


class TransactionalPublisher:
    def __init__(
        self,
        producer: EventProducer,
        group_metadata: GroupMetadata,
        still_member: StillMember = _always_member,
    ) -> None:
        self.producer = producer
        self.group_metadata = group_metadata
        self.still_member = still_member
        self.dropped = 0
        """Transactions aborted because the group had moved on (a frozen replica's)."""
        self._waiting: list[_Submission] = []
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.transactions = 0
        self.failed: BaseException | None = None
        """The first failed transaction's error; no transaction begins after one."""

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task, CANCEL_WAIT_S, "the transactional publisher")

    def submit(self, tp: TopicPartition, end_offset: int, publish: Publish) -> asyncio.Future[None]:
        """Queue a batch; the future resolves once its transaction has committed."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Submission(tp, end_offset, publish, done))
        self._arrived.set()
        return done

    async def _run(self) -> None:
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            batch, self._waiting = self._waiting, []
            if not batch:
                continue
            if self.failed is not None:
                # A later transaction would commit offsets past the aborted batch,
                # whose outputs are gone: nothing commits after a failure.
                for submission in batch:
                    if not submission.done.done():
                        submission.done.set_exception(self.failed)
                continue
            await self._commit(batch)

    async def _commit(self, batch: list[_Submission]) -> None:
        client = self.producer.client
        try:
            await client.begin_transaction()
            acks: list[asyncio.Future[DeliveryList]] = []
            offsets: dict[TopicPartition, int] = {}
            for submission in batch:
                acks.extend(await submission.publish())
                offsets[submission.tp] = max(offsets.get(submission.tp, 0), submission.end_offset)
            await asyncio.gather(*acks)
            if not await self.still_member():
                raise _Dropped
            await client.send_offsets_to_transaction(offsets, await self.group_metadata())
            await client.commit_transaction()
        except _Dropped:
            await self._drop(batch)
            return
        except Exception as exc:  # noqa: BLE001 - handed to every partition in the batch
            log.error("transaction of %d batches failed (%s); aborting", len(batch), exc)
            try:
                await client.abort_transaction()
            except Exception as abort_error:  # noqa: BLE001 - the first error is the one to report
                log.error("abort failed too: %s", abort_error)
            self.failed = exc
            for submission in batch:
                if not submission.done.done():
                    submission.done.set_exception(exc)
            return
        self.transactions += 1
        for submission in batch:
            if not submission.done.done():
                submission.done.set_result(None)

    async def _drop(self, batch: list[_Submission]) -> None:
        """Abort and abandon: the batches' new owner redoes them; this is no failure of ours."""
        self.dropped += 1
        log.warning(
            "the group dropped this replica while a transaction of %d batches was open: "
            "aborting it (its outputs are never read) and leaving the batches to their new owner",
            len(batch),
        )
        try:
            await self.producer.client.abort_transaction()
        except Exception as abort_error:  # noqa: BLE001 - the batches are abandoned either way
            log.error("aborting the zombie transaction failed: %s", abort_error)
            self.failed = abort_error
        for submission in batch:
            if not submission.done.done():
                submission.done.set_exception(Abandoned())
