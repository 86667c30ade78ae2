"""One batch per partition with the client at a time, none sent past one that failed, and
what waits meanwhile sent together.

A worker publishes a batch's outputs while the batch before is still
unacknowledged. When a batch fails for good, a client goes on to send the
next one, which is then stored ahead of the failed batch's records (those
come again only when the worker handles the failed batch again). So a batch
is handed to the client only once the one before it on its partition is
acknowledged, and what was waiting on a batch that failed fails too,
unsent. A submission that arrives after the failure was reported is an
independent publish and goes out, unless it belongs to a `Chain` that a
failure broke: a partition worker may hand over batch N+1's outputs after
batch N's failure was reported here but before the worker itself learnt of
it (it was handling N+1), and N+1 would then be stored ahead of N's redo.

Waiting costs a round trip per batch, so what waits is not sent batch by
batch: when the partition's turn comes, every submission waiting for it
goes out in one batch (as many as fit), rebuilt from their records. Each
submission's records stay contiguous in that batch, so each still learns
the offset of its first record. (Handing each batch over as it came nearly
tripled the median latency: docs/design-notes.md#partition-order.)

The caller is not held up: a submission that must wait gets a future at
once, and a task hands it over when its turn comes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from pipeline.kafka.port import Acknowledged, Batch, Headers, KafkaClientError, Producer

log = logging.getLogger("pipeline.producer")

Row = tuple[bytes | None, bytes | None, int | None, Headers]

MERGED_FILL = 0.9
"""Submissions are merged up to this share of the batch limit: a record's offset and
timestamp deltas can take a byte or two more in a merged batch than in its own."""


class BehindAFailedBatchError(KafkaClientError):
    """Not sent: the batch before it on its partition failed, and this one would overtake it."""


class Chain:
    """One caller's publishes, stored in the order submitted or, past a failure, not at all.

    Once one of its submissions fails (or fails behind another's failure),
    every later submission of the chain fails at once, unsent. A caller that
    starts afresh (a partition worker after a restart) makes a new chain.
    """

    __slots__ = ("broken_by",)

    def __init__(self) -> None:
        self.broken_by: BaseException | None = None


class Stored(NamedTuple):
    offset: int


@dataclass
class _Submission:
    rows: Sequence[Row]
    built: Batch
    """The records as the caller built them: sent as they are when nothing joins them."""
    acked: asyncio.Future[Acknowledged]
    chain: Chain | None


@dataclass
class _Lane:
    waiting: list[_Submission] = field(default_factory=list)
    in_flight: bool = False


class PartitionOrder:
    def __init__(self, client: Producer, batch_bytes: int) -> None:
        self._client = client
        self._batch_bytes = batch_bytes
        self._lanes: dict[tuple[str, int], _Lane] = {}
        self._handing_over: set[asyncio.Task[None]] = set()

    async def submit(
        self,
        topic: str,
        partition: int,
        built: Batch,
        rows: Sequence[Row],
        chain: Chain | None = None,
    ) -> asyncio.Future[Acknowledged]:
        """Send `built` now, or with whatever waits once the partition's turn comes.

        `rows` are the records of `built`, in order (needed when it is merged).
        The future: where its first record was stored, or why it was not.
        """
        acked: asyncio.Future[Acknowledged] = asyncio.get_running_loop().create_future()
        if chain is not None and chain.broken_by is not None:
            acked.set_exception(
                BehindAFailedBatchError(
                    f"not sent to {topic}-{partition}: an earlier publish of the same "
                    f"worker failed ({chain.broken_by}), and this one would be stored "
                    "ahead of its records"
                )
            )
            return acked
        key = (topic, partition)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
        submission = _Submission(rows, built, acked, chain)
        lane.waiting.append(submission)
        if not lane.in_flight:
            lane.in_flight = True
            await self._hand_over(topic, partition, lane)
        return submission.acked

    async def wait_handed_over(self) -> None:
        """Until every waiting submission was handed to the client or failed (before it stops)."""
        while self._handing_over:
            await asyncio.wait(list(self._handing_over))

    def _take(self, lane: _Lane) -> tuple[Batch, list[tuple[_Submission, int]]]:
        """The next batch: the first waiting submission and those after it that fit with it."""
        first = lane.waiting[0]
        taken = 1
        size = first.built.size()
        limit = self._batch_bytes * MERGED_FILL
        while taken < len(lane.waiting) and size + lane.waiting[taken].built.size() <= limit:
            size += lane.waiting[taken].built.size()
            taken += 1
        while taken > 1:
            merged = self._merged(lane.waiting[:taken])
            if merged is not None:
                del lane.waiting[:taken]
                return merged
            taken -= 1  # a client that sizes records differently: one fewer
        del lane.waiting[0]
        return first.built, [(first, 0)]

    def _merged(
        self, submissions: list[_Submission]
    ) -> tuple[Batch, list[tuple[_Submission, int]]] | None:
        batch = self._client.create_batch()
        placed: list[tuple[_Submission, int]] = []
        count = 0
        for submission in submissions:
            placed.append((submission, count))
            for key, value, timestamp, headers in submission.rows:
                if not batch.append(key, value, timestamp, headers):
                    return None
                count += 1
        return batch, placed

    async def _hand_over(self, topic: str, partition: int, lane: _Lane) -> None:
        """Send the next batch of a lane the caller marked in flight."""
        batch, placed = self._take(lane)
        try:
            acked = await self._client.send_batch(batch, topic, partition)
        except BaseException as exc:
            failure = exc if isinstance(exc, Exception) else KafkaClientError("cancelled, unsent")
            self._settle(topic, partition, lane, placed, None, failure)
            if not isinstance(exc, Exception):
                for submission, _ in placed:
                    submission.acked.exception()  # the caller gets the cancellation itself
                raise
            return
        acked.add_done_callback(
            lambda done: self._settle(topic, partition, lane, placed, done, None)
        )

    def _settle(
        self,
        topic: str,
        partition: int,
        lane: _Lane,
        placed: list[tuple[_Submission, int]],
        done: asyncio.Future[Acknowledged] | None,
        failure: BaseException | None,
    ) -> None:
        if failure is None and done is not None:
            failure = KafkaClientError("cancelled") if done.cancelled() else done.exception()
        if failure is None and done is not None:
            first = done.result().offset
            for submission, position in placed:
                if not submission.acked.done():
                    submission.acked.set_result(Stored(first + position))
        else:
            assert failure is not None
            for submission, _ in placed:
                _fail(submission, failure)
            behind = BehindAFailedBatchError(
                f"not sent to {topic}-{partition}: the batch before it failed ({failure}), "
                "and this one would be stored ahead of its records"
            )
            for submission in lane.waiting:
                _fail(submission, behind)
            lane.waiting.clear()
        lane.in_flight = bool(lane.waiting)
        if lane.waiting:
            task = asyncio.ensure_future(self._hand_over(topic, partition, lane))
            self._handing_over.add(task)
            task.add_done_callback(self._handing_over.discard)
        elif self._lanes.get((topic, partition)) is lane:
            del self._lanes[(topic, partition)]


def _fail(submission: _Submission, failure: BaseException) -> None:
    if submission.chain is not None and submission.chain.broken_by is None:
        submission.chain.broken_by = failure
    if not submission.acked.done():
        submission.acked.set_exception(failure)
