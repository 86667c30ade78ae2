"""The port's Clients on an in-memory broker."""

from __future__ import annotations

from pipeline.kafka.memory.admin import MemoryAdmin
from pipeline.kafka.memory.cluster import BOOTSTRAP, MemoryBroker
from pipeline.kafka.memory.consumer import MemoryConsumer
from pipeline.kafka.memory.producer import MemoryProducer
from pipeline.kafka.memory.share_groups import MemoryShareConsumer
from pipeline.kafka.port import (
    Admin,
    Consumer,
    ConsumerOptions,
    Producer,
    ProducerOptions,
    ShareConsumer,
    ShareOptions,
)


class MemoryClients:
    """Clients of one MemoryBroker (a new, empty one unless given)."""

    def __init__(self, broker: MemoryBroker | None = None) -> None:
        self.broker = broker or MemoryBroker()

    @property
    def bootstrap(self) -> str:
        return BOOTSTRAP

    def consumer(self, options: ConsumerOptions) -> Consumer:
        return MemoryConsumer(self.broker, options)

    def producer(self, options: ProducerOptions) -> Producer:
        return MemoryProducer(self.broker, options)

    def admin(self) -> Admin:
        return MemoryAdmin(self.broker)

    def share_consumer(self, options: ShareOptions) -> ShareConsumer:
        return MemoryShareConsumer(self.broker, options)
