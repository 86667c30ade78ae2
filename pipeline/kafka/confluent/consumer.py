"""The port's Consumer on confluent-kafka: librdkafka fetches on its own threads.

Every call to the Consumer runs on one ConsumerThread. The port's
synchronous calls (pause, resume, seek, assignment, positions, high
waters) never wait for it: changes are queued in order, and what the loop
reads is a mirror the thread refreshes after each fetch.

`fetch` for some partitions only: the others' records wait for their turn
(pipeline.kafka.confluent.fetched), dropped by a seek or a revocation.

What it owns, and the rebalance callbacks that change it, are
pipeline.kafka.confluent.assignment's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, KafkaException
from confluent_kafka import TopicPartition as TheirPartition

from pipeline.kafka.confluent.assignment import Assignment, Incremental
from pipeline.kafka.confluent.errors import translated
from pipeline.kafka.confluent.fetched import FetchedAhead, PositionMirror
from pipeline.kafka.confluent.offsets import (
    QUERY_TIMEOUT_S,
    commit_offsets,
    committed_offset,
    offsets_at_times,
    partitions_of,
    position_before_fetching,
    watermarks,
)
from pipeline.kafka.confluent.records import ConfluentRecord, by_partition, ours, theirs
from pipeline.kafka.confluent.thread import SERVE_SLICE_S, ConsumerThread
from pipeline.kafka.metadata import DEFAULT_WAIT_S, TopicNotOnClusterError
from pipeline.kafka.port import (
    CommitMetadata,
    Committed,
    KafkaClientError,
    RebalanceListener,
    TopicPartition,
)


class ConfluentConsumer:
    def __init__(
        self,
        config: dict[str, Any],
        protocol: Incremental,
        group_id: str | None,
    ) -> None:
        self._config = config
        self._group_id = group_id
        self._client: Consumer | None = None
        self._thread = ConsumerThread(f"kafka-consumer-{group_id or 'reader'}")
        self._ahead = FetchedAhead()
        self._mirror = PositionMirror()
        reset = OFFSET_BEGINNING if config.get("auto.offset.reset") == "earliest" else OFFSET_END
        self._assignment = Assignment(
            protocol, None if group_id else reset, self._thread, self._ahead, self._mirror
        )
        self._before_start: list[tuple[Callable[..., object], tuple[Any, ...]]] = []
        """Calls made before start (the port allows subscribing first), made by start."""

    @property
    def client(self) -> Consumer:
        if self._client is None:
            raise KafkaClientError("the consumer is not started (call start() first)")
        return self._client

    # -- life -------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._assignment.loop = asyncio.get_running_loop()
        self._thread.start()
        self._client = await self._thread.call(Consumer, dict(self._config))
        for function, args in self._before_start:
            self._thread.post(function, *args)
        self._before_start.clear()

    async def stop(self) -> None:
        if self._client is None:
            return
        client = self._client
        try:
            await self._thread.call(client.close)
        finally:
            self._thread.stop()
            await asyncio.to_thread(self._thread.join, QUERY_TIMEOUT_S)
            self._client = None

    # -- assignment -------------------------------------------------------------------------------

    def subscribe(self, topic: str, listener: RebalanceListener) -> None:
        self._assignment.listener = listener
        self._post(self._subscribe_on_thread, topic)

    def _subscribe_on_thread(self, topic: str) -> None:
        assignment = self._assignment
        self.client.subscribe(
            [topic],
            on_assign=assignment.on_assign,
            on_revoke=assignment.on_revoke,
            on_lost=assignment.on_lost,
        )

    def _post(self, function: Callable[..., object], *args: Any) -> None:
        if self._client is None:
            self._before_start.append((function, args))
        else:
            self._thread.post(function, *args)

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        wanted = {TopicPartition(*tp) for tp in partitions}
        self._assignment.replace(wanted)
        self._post(self._assign_on_thread, wanted)

    def _assign_on_thread(self, partitions: set[TopicPartition]) -> None:
        self.client.assign(self._assignment.positioned(partitions))

    def assignment(self) -> set[TopicPartition]:
        return set(self._assignment.owned)

    # -- fetching ---------------------------------------------------------------------------------

    @translated
    async def fetch(
        self, partitions: Collection[TopicPartition], timeout_s: float, max_records: int
    ) -> Mapping[TopicPartition, Sequence[ConfluentRecord]]:
        wanted = set(partitions) if partitions else None
        kept = self._ahead.take(wanted, max_records)
        if kept:
            return kept
        fetched = await self._thread.call(
            self._fetch_on_thread, timeout_s, max_records, nestable=False
        )
        if wanted is None:
            return fetched
        found: dict[TopicPartition, Sequence[ConfluentRecord]] = {}
        for tp, records in fetched.items():
            if tp in wanted:
                found[tp] = records
            else:
                self._ahead.keep(tp, records)
        return found

    def _fetch_on_thread(
        self, timeout_s: float, max_records: int
    ) -> dict[TopicPartition, list[ConfluentRecord]]:
        """On the consumer thread: what is ready now, else the first records within the timeout."""
        client = self.client
        assignment = self._assignment
        deadline = time.monotonic() + timeout_s
        assignment.revoked_in_fetch = set()
        messages = client.consume(max_records, 0)
        while not messages:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            messages = client.consume(1, min(remaining, SERVE_SLICE_S))
            if messages and max_records > 1:
                messages.extend(client.consume(max_records - 1, 0))
            self._thread.serve_pending()
        found = by_partition(messages)
        owned = assignment.owned
        given_back = assignment.revoked_in_fetch & owned
        for tp in list(found):
            if tp not in owned or tp in given_back:
                # Fetched before a revocation within this call: the old assignment's.
                del found[tp]
                self._mirror.unsettle([tp])
            else:
                assignment.starts.pop(tp, None)  # fetching: a seek now moves it, not an assignment
        if given_back:
            assignment.restart(client, given_back)
        self._mirror.refresh(client, assignment.owned, found)
        return found

    def pause(self, *partitions: TopicPartition) -> None:
        self._post(self._pause_on_thread, [theirs(tp) for tp in partitions], True)

    def resume(self, *partitions: TopicPartition) -> None:
        self._post(self._pause_on_thread, [theirs(tp) for tp in partitions], False)

    def _pause_on_thread(self, partitions: list[TheirPartition], pause: bool) -> None:
        if pause:
            self.client.pause(partitions)
            self._assignment.paused |= {ours(tp) for tp in partitions}
        else:
            self.client.resume(partitions)
            self._assignment.paused -= {ours(tp) for tp in partitions}

    def seek(self, partition: TopicPartition, offset: int) -> None:
        tp = TopicPartition(*partition)
        self._ahead.drop(tp)
        self._mirror.positions[tp] = offset
        self._post(self._seek_on_thread, tp, offset)

    def _seek_on_thread(self, tp: TopicPartition, offset: int) -> None:
        client = self.client
        self._assignment.starts[tp] = offset  # also for a reassignment before its first record
        try:
            client.seek(theirs(tp, offset))
        except KafkaException as exc:
            # Not fetching yet (just assigned): the offset is taken at assignment instead.
            if exc.args and exc.args[0].code() == KafkaError._STATE:
                self._assignment.restart_at_seek(client, tp, offset)
            else:
                raise
        self._ahead.drop(tp)

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        beginnings = await self.beginning_offsets(partitions)
        for tp, offset in beginnings.items():
            self.seek(tp, offset)

    async def position(self, partition: TopicPartition) -> int:
        return await position_before_fetching(
            self, partition, self._config.get("auto.offset.reset"), bool(self._group_id)
        )

    def known_position(self, partition: TopicPartition) -> int | None:
        if partition not in self._assignment.owned:
            return None
        # librdkafka's position counts records waiting here too; the port's
        # position is what was handed over (a committer skips up to it).
        waiting = self._ahead.first_offset(partition)
        return waiting if waiting is not None else self._mirror.positions.get(partition)

    def highwater(self, partition: TopicPartition) -> int | None:
        if partition not in self._assignment.owned:
            return None
        return self._mirror.highwaters.get(partition)

    # -- offsets ----------------------------------------------------------------------------------

    @translated
    async def commit(
        self, offsets: Mapping[TopicPartition, int], metadata: CommitMetadata = ""
    ) -> None:
        if offsets:
            await self._thread.call(commit_offsets, self.client, offsets, metadata)

    @translated
    async def committed(self, partition: TopicPartition) -> Committed | None:
        return await self._thread.call(committed_offset, self.client, partition)

    @translated
    async def beginning_offsets(
        self, partitions: Collection[TopicPartition]
    ) -> dict[TopicPartition, int]:
        return await self._thread.call(watermarks, self.client, list(partitions), 0)

    @translated
    async def end_offsets(
        self, partitions: Collection[TopicPartition]
    ) -> dict[TopicPartition, int]:
        return await self._thread.call(watermarks, self.client, list(partitions), 1)

    @translated
    async def offsets_for_times(
        self, times_ms: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, int | None]:
        return await self._thread.call(offsets_at_times, self.client, times_ms)

    @translated
    async def partition_count(self, topic: str, wait_s: float = DEFAULT_WAIT_S) -> int:
        deadline = time.monotonic() + wait_s
        while not (count := await self._thread.call(partitions_of, self.client, topic)):
            if time.monotonic() >= deadline:
                raise TopicNotOnClusterError(topic, str(self._config["bootstrap.servers"]))
            await asyncio.sleep(0.2)
        return count

    async def group_metadata(self) -> object:
        """KIP-447: the group, this member and its generation, so a cut-off member is fenced."""
        return await self._thread.call(self.client.consumer_group_metadata)
