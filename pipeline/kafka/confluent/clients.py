"""The confluent-kafka adapter: the port's clients, made from settings.

Chosen with PIPELINE_CLIENT=confluent (or `pipeline worker --client confluent`);
librdkafka's configuration is built in config.py.
"""

from __future__ import annotations

from pipeline.kafka.aiokafka.clients import AioClients
from pipeline.kafka.confluent.admin import ConfluentAdmin
from pipeline.kafka.confluent.config import (
    client_config,
    consumer_config,
    producer_config,
    share_consumer_config,
)
from pipeline.kafka.confluent.consumer import ConfluentConsumer
from pipeline.kafka.confluent.producer import ConfluentProducer
from pipeline.kafka.confluent.share_consumer import ConfluentShareConsumer
from pipeline.kafka.port import (
    Admin,
    Consumer,
    ConsumerOptions,
    Producer,
    ProducerOptions,
    ShareConsumer,
    ShareOptions,
)
from pipeline.settings import PipelineSettings


class ConfluentClients:
    """The port's Clients on confluent-kafka."""

    def __init__(self, settings: PipelineSettings) -> None:
        self.settings = settings

    @property
    def bootstrap(self) -> str:
        return self.settings.bootstrap_servers

    def consumer(self, options: ConsumerOptions) -> Consumer:
        return ConfluentConsumer(
            consumer_config(self.settings, options),
            self.settings.rebalance_protocol if options.group_id else "eager",
            options.group_id,
        )

    def producer(self, options: ProducerOptions) -> Producer:
        return ConfluentProducer(producer_config(self.settings, options), options.batch_bytes)

    def admin(self) -> Admin:
        return ConfluentAdmin(client_config(self.settings), AioClients(self.settings).admin)

    def share_consumer(self, options: ShareOptions) -> ShareConsumer:
        return ConfluentShareConsumer(
            share_consumer_config(self.settings, options), options.group_id
        )
