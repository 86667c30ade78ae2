"""The in-memory broker's state: topics, groups, transactions, and failures a test can inject."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.kafka.memory.groups import Group
from pipeline.kafka.memory.log import (
    Entry,
    MemoryRecord,
    PartitionLog,
    TopicLog,
    Transaction,
)
from pipeline.kafka.metadata import TopicNotOnClusterError
from pipeline.kafka.port import KafkaClientError, TopicPartition

if TYPE_CHECKING:
    from pipeline.kafka.memory.share_state import ShareGroup

BOOTSTRAP = "memory://"


@dataclass
class Failure:
    """Make the next `times` calls of `operation` (on `topic`, or any) fail with `error`."""

    operation: str
    times: int
    error: str
    topic: str | None = None
    retriable: bool = True


class MemoryBroker:
    def __init__(self) -> None:
        self.topics: dict[str, TopicLog] = {}
        self.groups: dict[str, Group] = {}
        self.group_configs: dict[str, dict[str, str]] = {}
        self.share_groups: dict[str, ShareGroup] = {}
        self.transactions: dict[int, Transaction] = {}
        self._transaction_ids = itertools.count(1)
        self._epochs: dict[str, int] = {}
        self._failures: list[Failure] = []
        self._data = asyncio.Event()
        self._tasks: set[asyncio.Future[None]] = set()
        self.reachable = True
        """False: every client call fails as if the broker were gone (retriable)."""

    # -- topics --------------------------------------------------------------------------

    def create_topic(
        self, name: str, partitions: int, configs: dict[str, str] | None = None
    ) -> TopicLog:
        if name in self.topics:
            raise KafkaClientError(f"TopicAlreadyExistsError: {name!r}")
        topic = TopicLog(
            name, [PartitionLog(name, p) for p in range(partitions)], dict(configs or {})
        )
        self.topics[name] = topic
        return topic

    def grow_topic(self, name: str, total: int) -> None:
        topic = self.topic(name)
        for partition in range(len(topic.partitions), total):
            topic.partitions.append(PartitionLog(name, partition))

    def topic(self, name: str) -> TopicLog:
        found = self.topics.get(name)
        if found is None:
            raise TopicNotOnClusterError(name, BOOTSTRAP)
        return found

    def partition_log(self, tp: tuple[str, int]) -> PartitionLog:
        return self.topic(tp[0]).partitions[tp[1]]

    def partition_count_now(self, topic: str) -> int:
        found = self.topics.get(topic)
        return 0 if found is None else len(found.partitions)

    async def partition_count(self, topic: str, wait_s: float = 5.0) -> int:
        self.check_reachable()
        return len(self.topic(topic).partitions)

    def delete_records(self, tp: tuple[str, int], before: int) -> None:
        """What retention (or Kafka's DeleteRecords) does: records before `before` are gone."""
        log = self.partition_log(tp)
        log.log_start = max(log.log_start, min(before, log.high_watermark))

    # -- records -------------------------------------------------------------------------

    def append(
        self, log: PartitionLog, record: MemoryRecord, transaction: Transaction | None
    ) -> None:
        log.entries.append(Entry(record, None if transaction is None else transaction.id))
        if transaction is not None:
            transaction.partitions.add((log.topic, log.partition))
        self._wake()

    def wake_readers(self) -> None:
        """Records became available again (a share group's release): pollers look again."""
        self._wake()

    def _wake(self) -> None:
        self._data.set()
        self._data = asyncio.Event()

    async def wait_for_data(self, timeout_s: float) -> None:
        """Until something is appended (or committed), at most `timeout_s`."""
        if timeout_s <= 0:
            return
        try:
            await asyncio.wait_for(self._data.wait(), timeout_s)
        except TimeoutError:
            return

    # -- groups --------------------------------------------------------------------------

    def group(self, group_id: str) -> Group:
        found = self.groups.get(group_id)
        if found is None:
            found = self.groups[group_id] = Group(group_id, self.partition_count_now)
        return found

    async def rebalance(self, group_id: str) -> None:
        """A rebalance of the group now, as a member joining or leaving would cause."""
        await self.group(group_id).rebalance()

    def spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- transactions ----------------------------------------------------------------------

    def register_transactional(self, transactional_id: str) -> int:
        """A new producer for this id: it fences the ones before (their epoch is over)."""
        epoch = self._epochs.get(transactional_id, 0) + 1
        self._epochs[transactional_id] = epoch
        for transaction in self.transactions.values():
            if transaction.state == "open" and transaction.owner == transactional_id:
                self.end_transaction(transaction, commit=False)
        return epoch

    def epoch(self, transactional_id: str) -> int:
        return self._epochs.get(transactional_id, 0)

    def begin_transaction(self, owner: str | None = None) -> Transaction:
        transaction = Transaction(next(self._transaction_ids), owner=owner)
        self.transactions[transaction.id] = transaction
        return transaction

    def end_transaction(self, transaction: Transaction, commit: bool) -> None:
        """A marker on every partition it wrote; on commit, its offsets reach the group."""
        transaction.state = "committed" if commit else "aborted"
        for topic, partition in sorted(transaction.partitions):
            log = self.partition_log((topic, partition))
            log.entries.append(Entry(None, transaction.id, marker=True))
        if commit and transaction.group is not None:
            self.group(transaction.group).commit(
                {TopicPartition(*tp): offset for tp, offset in transaction.offsets.items()}, ""
            )
        self._wake()

    # -- failures ----------------------------------------------------------------------------

    def fail(
        self,
        operation: str,
        times: int = 1,
        error: str = "KafkaTimeoutError",
        topic: str | None = None,
        retriable: bool = True,
    ) -> None:
        """The next `times` calls of `operation` fail: produce, commit or commit_transaction."""
        self._failures.append(Failure(operation, times, error, topic, retriable))

    async def maybe_fail(self, operation: str, topic: str | None = None) -> None:
        for failure in self._failures:
            if failure.operation == operation and failure.topic in (None, topic):
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
                await asyncio.sleep(0)
                raise KafkaClientError(
                    f"{failure.error}: injected on {operation}", retriable=failure.retriable
                )

    def check_reachable(self) -> None:
        if not self.reachable:
            raise KafkaClientError("KafkaConnectionError: the broker is unreachable", True)
