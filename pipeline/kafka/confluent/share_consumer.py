"""The port's ShareConsumer on confluent-kafka's (librdkafka's share consumer, preview).

confluent-kafka's ShareConsumer is synchronous and not thread-safe, and a
call from a second thread while one is in progress raises. So each one
lives on a thread of its own and every call is queued to it; the event
loop never blocks on a poll. Acknowledgements are explicit: a record is
ACCEPTed, RELEASEd or REJECTed by the caller, and the client refuses the
next poll until every record of the last one has an outcome.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

from confluent_kafka import (
    AcknowledgeType,
    IllegalStateException,
    KafkaError,
    KafkaException,
    Message,
    ShareConsumer,
)

from pipeline.kafka.confluent.errors import translated
from pipeline.kafka.port import (
    Headers,
    KafkaClientError,
    Outcome,
    SharedRecord,
    ShareGroupsUnsupported,
    TopicPartition,
)

log = logging.getLogger("pipeline.kafka.confluent")

T = TypeVar("T")

COMMIT_TIMEOUT_S = 30.0
OUTCOMES = {
    "accept": AcknowledgeType.ACCEPT,
    "release": AcknowledgeType.RELEASE,
    "reject": AcknowledgeType.REJECT,
}


class ConfluentSharedRecord:
    """An acquired record with the port's attributes and its delivery count."""

    __slots__ = (
        "delivery_count",
        "headers",
        "key",
        "offset",
        "partition",
        "timestamp",
        "topic",
        "value",
    )

    def __init__(self, message: Message) -> None:
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        assert topic is not None and partition is not None and offset is not None
        self.topic: str = topic
        self.partition: int = partition
        self.offset: int = offset
        self.timestamp: int = message.timestamp()[1]
        self.key: bytes | None = message.key()
        self.value: bytes | None = message.value()
        self.headers: Headers = cast(Headers, message.headers() or ())
        self.delivery_count: int = message.delivery_count() or 1


def unsupported_by_the_cluster(
    exc: KafkaClientError, group_id: str, bootstrap: str
) -> KafkaClientError:
    """A cluster without share groups answers the member's heartbeat UNSUPPORTED_VERSION
    (checked on Kafka 4.4 formatted with share.version=0): say so, and what to do."""
    text = str(exc)
    if "UNSUPPORTED_VERSION" not in text or "ShareGroup" not in text:
        return exc
    return ShareGroupsUnsupported(
        f"share group {group_id!r}: the cluster at {bootstrap} does not serve share groups "
        f"({text}). Kafka 4.2 and later enable them on new clusters; on one formatted "
        "without them run `kafka-features.sh --bootstrap-server "
        f"{bootstrap} upgrade --feature share.version=1`"
    )


class ConfluentShareConsumer:
    def __init__(self, config: dict[str, Any], group_id: str) -> None:
        self._config = config
        self._group_id = group_id
        self._bootstrap = str(config.get("bootstrap.servers", ""))
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"kafka-share-{group_id}")
        self._client: ShareConsumer | None = None

    async def _on_thread(self, call: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._thread, functools.partial(call, *args))
        except IllegalStateException as exc:  # a poll before every outcome, a stale record
            raise KafkaClientError(f"IllegalState: {exc}") from exc

    @property
    def client(self) -> ShareConsumer:
        if self._client is None:
            raise KafkaClientError("the share consumer is not started (call start() first)")
        return self._client

    @translated
    async def start(self) -> None:
        self._client = await self._on_thread(ShareConsumer, dict(self._config))

    @translated
    async def stop(self) -> None:
        client, self._client = self._client, None
        try:
            if client is not None:
                await self._on_thread(client.close)
        finally:
            self._thread.shutdown(wait=False)

    @translated
    async def subscribe(self, topics: Sequence[str]) -> None:
        await self._on_thread(self.client.subscribe, list(topics))

    async def poll(self, wait_s: float) -> list[SharedRecord]:
        try:
            return await self._translated_poll(wait_s)
        except KafkaClientError as exc:
            raise unsupported_by_the_cluster(exc, self._group_id, self._bootstrap) from exc

    @translated
    async def _translated_poll(self, wait_s: float) -> list[SharedRecord]:
        return await self._on_thread(self._poll_on_thread, self.client, wait_s)

    def _poll_on_thread(self, client: ShareConsumer, wait_s: float) -> list[SharedRecord]:
        acquired: list[SharedRecord] = []
        for message in client.poll(wait_s):
            error = message.error()
            if error is None:
                acquired.append(ConfluentSharedRecord(message))
            elif error.fatal():
                raise KafkaException(error)
            elif error.code() != KafkaError._PARTITION_EOF:
                log.warning(
                    "share group %s: the consumer reports %s: %s",
                    self._group_id,
                    error.name(),
                    error.str(),
                )
        return acquired

    @translated
    async def acknowledge(self, record: SharedRecord, outcome: Outcome) -> None:
        await self._on_thread(
            self.client.acknowledge_offset,
            record.topic,
            record.partition,
            record.offset,
            OUTCOMES[outcome],
        )

    @translated
    async def commit(self) -> dict[TopicPartition, str | None]:
        answers = await self._on_thread(self.client.commit_sync, COMMIT_TIMEOUT_S)
        return {
            TopicPartition(tp.topic, tp.partition): None if error is None else str(error)
            for tp, error in (answers or {}).items()
        }
