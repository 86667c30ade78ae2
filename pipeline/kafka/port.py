"""The narrow interface the rest of the library talks to Kafka through.

Three roles: a consumer (a group member, or a reader of assigned
partitions), a producer (record batches per partition, transactions), an
admin (topics, configs, group offsets). Two implementations: the aiokafka
adapter (`pipeline.kafka.aiokafka.clients`) and an in-memory broker
(`pipeline.kafka.memory`), held to the same behaviour by one contract
suite (`tests/contract/`). Nothing outside `pipeline.kafka` imports a Kafka
client; modules ask a `Clients` factory, built once at the entry point, for
what they need.

Records are described by a Protocol that aiokafka's own records satisfy, so
the hot path wraps nothing per record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

from pipeline.errors import PipelineError

Headers = Sequence[tuple[str, bytes | None]]


class KafkaClientError(PipelineError):
    """A client call the brokers refused or did not answer; `retriable` if trying again may work."""

    def __init__(self, message: str, retriable: bool = False) -> None:
        super().__init__(message)
        self.retriable = retriable


class TopicPartition(NamedTuple):
    """A partition of a topic; equal to (and hashed like) any client's (topic, partition) tuple."""

    topic: str
    partition: int


class Record(Protocol):
    """A fetched record, as the runtime reads it."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Headers: ...


CommitMetadata = str | Mapping["TopicPartition", str]
"""What a commit stores beside each offset: the same for all partitions, or per partition."""


def metadata_of(metadata: CommitMetadata, partition: TopicPartition) -> str:
    return metadata if isinstance(metadata, str) else metadata.get(partition, "")


class Committed(NamedTuple):
    """A group's commit on one partition: the next offset to read and its metadata."""

    offset: int
    metadata: str


@dataclass(frozen=True)
class GroupMember:
    """One consumer of a group, as the coordinator describes it."""

    member_id: str
    client_id: str
    host: str
    assignment: tuple[TopicPartition, ...]


@dataclass(frozen=True)
class GroupDescription:
    group: str
    state: str
    """Stable, PreparingRebalance, CompletingRebalance, Empty or Dead (Kafka's words)."""
    members: tuple[GroupMember, ...]


@dataclass(frozen=True)
class PartitionInfo:
    partition: int
    leader: int
    replicas: list[int]
    isr: list[int]


@dataclass(frozen=True)
class NewTopic:
    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str] = field(default_factory=dict)


class RebalanceListener(Protocol):
    """Called around each rebalance of a subscribed consumer (eager: all revoked, then assigned)."""

    async def on_revoked(self, revoked: set[TopicPartition]) -> None: ...

    async def on_assigned(self, assigned: set[TopicPartition]) -> None: ...


@dataclass(frozen=True)
class ConsumerOptions:
    """What a consumer is for; the adapter maps these onto its client's settings."""

    group_id: str | None = None
    group_instance_id: str | None = None
    """Static membership: a restart within the session timeout keeps the partitions."""
    isolation: Literal["read_committed", "read_uncommitted"] = "read_uncommitted"
    """Kafka's default; a read_committed reader sees the last stable offset as the end."""
    start: Literal["earliest", "latest"] = "latest"
    """Where a partition with no committed (or sought) offset starts; Kafka's default."""
    max_partition_fetch_bytes: int = 1024 * 1024
    fetch_max_bytes: int = 50 * 1024 * 1024
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    rebalance_timeout_ms: int = 60_000
    client_id: str | None = None
    """Names this consumer to the group coordinator (the settings' client id when None): how a
    replica finds itself among the group's members (pipeline.runtime.standby_placement)."""


class Consumer(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None:
        """Leave the group (if any) and close."""

    def subscribe(self, topic: str, listener: RebalanceListener) -> None: ...

    def assign(self, partitions: Iterable[TopicPartition]) -> None: ...

    def assignment(self) -> set[TopicPartition]: ...

    async def fetch(
        self, partitions: Collection[TopicPartition], timeout_s: float, max_records: int
    ) -> Mapping[TopicPartition, Sequence[Record]]:
        """Records of these partitions (an empty collection: of every fetchable one)."""

    def pause(self, *partitions: TopicPartition) -> None: ...

    def resume(self, *partitions: TopicPartition) -> None: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None: ...

    async def position(self, partition: TopicPartition) -> int:
        """The next offset this consumer hands over, waiting until it knows it."""

    def known_position(self, partition: TopicPartition) -> int | None:
        """The next offset this consumer hands over, or None while it does not know it yet."""

    def highwater(self, partition: TopicPartition) -> int | None:
        """The end offset seen in the last fetch of the partition, if any."""

    async def commit(
        self, offsets: Mapping[TopicPartition, int], metadata: CommitMetadata = ""
    ) -> None:
        """`metadata`: one string for every partition, or one per partition (missing: "")."""

    async def committed(self, partition: TopicPartition) -> Committed | None:
        """The group's commit on the partition (offset and metadata); None: never committed."""

    async def beginning_offsets(
        self, partitions: Collection[TopicPartition]
    ) -> dict[TopicPartition, int]: ...

    async def end_offsets(
        self, partitions: Collection[TopicPartition]
    ) -> dict[TopicPartition, int]: ...

    async def offsets_for_times(
        self, times_ms: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, int | None]:
        """Per partition the first offset at or after the time; None past the end."""

    async def partition_count(self, topic: str, wait_s: float = 5.0) -> int:
        """Partitions of `topic`; TopicNotOnClusterError, naming it, when it does not exist."""

    async def group_metadata(self) -> object:
        """What a transaction's offsets name this member by (for send_offsets_to_transaction).

        The group id on clients without KIP-447; with it, also the member and
        its generation, so offsets from a member the group has moved on from
        are refused (the member is fenced).
        """


class Batch(Protocol):
    """Records for one partition, sent together."""

    def append(
        self, key: bytes | None, value: bytes | None, timestamp: int | None, headers: Headers
    ) -> bool:
        """False when the batch is full (never for the first record)."""

    def size(self) -> int: ...


class Acknowledged(Protocol):
    """Where the broker stored a batch: the offset of its first record."""

    @property
    def offset(self) -> int: ...


@dataclass(frozen=True)
class ProducerOptions:
    transactional_id: str | None = None
    batch_bytes: int = 512 * 1024
    max_request_bytes: int = 4 * 1024 * 1024
    request_timeout_ms: int = 30_000
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "none"
    transaction_timeout_ms: int = 15_000


class Producer(Protocol):
    """Idempotent and acks=all, always: an acknowledged record is stored."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def create_batch(self) -> Batch: ...

    async def send_batch(
        self, batch: Batch, topic: str, partition: int
    ) -> asyncio.Future[Acknowledged]:
        """Queue the batch behind the partition's earlier ones; await the result for the ack."""

    async def partition_count(self, topic: str, wait_s: float = 5.0) -> int: ...

    async def begin_transaction(self) -> None: ...

    async def send_offsets_to_transaction(
        self, offsets: Mapping[TopicPartition, int], group: object
    ) -> None:
        """`group`: the consuming Consumer's group_metadata() of the same adapter."""

    async def commit_transaction(self) -> None: ...

    async def abort_transaction(self) -> None: ...


class Admin(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def broker_count(self) -> int: ...

    async def describe_topics(self, names: Collection[str]) -> dict[str, list[PartitionInfo]]:
        """Partition layout of the topics that exist; missing ones are left out."""

    async def topic_configs(self, names: Collection[str]) -> dict[str, dict[str, str]]: ...

    async def create_topics(self, topics: Sequence[NewTopic]) -> dict[str, str | None]:
        """Per topic None, or why it was not created (an existing topic is not an error here)."""

    async def create_partitions(self, totals: Mapping[str, int]) -> None: ...

    async def set_topic_configs(
        self, configs: Mapping[str, Mapping[str, str]]
    ) -> dict[str, str | None]:
        """Set these configs, leaving every other one alone; per topic None or the refusal."""

    async def set_group_configs(self, group: str, configs: Mapping[str, str]) -> str | None:
        """Set a group's configs (a share group's start, lock, delivery limit); None or the
        refusal."""

    async def group_commits(self, group: str) -> dict[TopicPartition, Committed]: ...

    async def list_groups(self) -> list[str]:
        """Every consumer group the cluster knows (with committed offsets or members), sorted."""

    async def describe_group(self, group: str) -> GroupDescription:
        """Its state and members with their assignments; an unknown group is Dead, no members."""

    async def describe_share_group(self, group: str) -> GroupDescription:
        """A share group's state and members, each with the partitions it fetches from; an
        unknown group (or one that is no share group) is Dead, no members."""

    async def share_group_backlog(self, group: str) -> dict[TopicPartition, ShareBacklog]:
        """Per partition a share group has read: its start offset and lag. Empty for a
        group that has read nothing, or is no share group (Kafka answers so for both)."""


# -- share groups ---------------------------------------------------------------------------
# KIP-932, "queues for Kafka": a share group hands each record to one member of any number,
# under a time-limited lock; the member accepts it (done), releases it (delivered again, its
# delivery count one higher) or rejects it (never again); a member that leaves or dies loses
# its locks and the records go to others. Only the confluent client speaks it (librdkafka's
# share consumer, in preview in confluent-kafka 2.16) and the in-memory broker; aiokafka has
# none. A share consumer is not thread-safe and, acknowledging explicitly,
# must give every record of a poll an outcome before the next: one member per slot of work.


@dataclass(frozen=True)
class ShareBacklog:
    start: int
    """Every record below it has an outcome (the share-partition start offset; Kafka 4.4
    may report it behind); -1 before any outcome was written."""
    lag: int
    """Records without an outcome yet, in flight ones included; -1 (unknown) before any
    outcome was written (the whole partition is backlog then)."""


Outcome = Literal["accept", "release", "reject"]
"""accept: done; release: deliver again (to any member); reject: never deliver again."""

SHARE_GROUP_DEFAULTS: Mapping[str, str] = {"share.auto.offset.reset": "earliest"}
"""Group configs a share group of this project gets: Kafka's default start is the latest
offset, which would skip every record published before the first member joined."""


class SharedRecord(Record, Protocol):
    """A record acquired from a share group: the port's record and its delivery count."""

    @property
    def delivery_count(self) -> int:
        """1 on the first delivery; a release or a lost lock makes the next one higher."""


@dataclass(frozen=True)
class ShareOptions:
    group_id: str
    max_records: int = 1
    """Records one poll may acquire; all of them are acknowledged before the next poll."""
    client_id: str | None = None


class ShareConsumer(Protocol):
    """One member of a share group; every call runs on the consumer's own thread."""

    async def start(self) -> None: ...

    async def stop(self) -> None:
        """Send the acknowledgements made and leave the group; unacknowledged records'
        locks are released, so others get them without waiting out the lock."""

    async def subscribe(self, topics: Sequence[str]) -> None: ...

    async def poll(self, wait_s: float) -> list[SharedRecord]:
        """Acquire up to max_records, waiting at most `wait_s` for the first."""

    async def acknowledge(self, record: SharedRecord, outcome: Outcome) -> None:
        """Record the outcome locally; `commit` (or the next poll) sends it."""

    async def commit(self) -> dict[TopicPartition, str | None]:
        """Send the outcomes made since the last commit; per partition None or the refusal."""


class ShareGroupsUnsupported(KafkaClientError):
    """The client or the cluster cannot do share groups; says which and what to do."""


class Clients(Protocol):
    """Makes the clients of one cluster; built once, at the entry point, from settings."""

    @property
    def bootstrap(self) -> str: ...

    def consumer(self, options: ConsumerOptions) -> Consumer: ...

    def producer(self, options: ProducerOptions) -> Producer: ...

    def admin(self) -> Admin: ...

    def share_consumer(self, options: ShareOptions) -> ShareConsumer:
        """A share group member (see "share groups" above); ShareGroupsUnsupported where the
        client cannot be one."""
