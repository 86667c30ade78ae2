"""The one place that decides which Kafka client the process uses."""

from __future__ import annotations

from pipeline.kafka.port import Clients
from pipeline.settings import PipelineSettings


def connect(settings: PipelineSettings) -> Clients:
    """Clients for the cluster the settings name, on the client they choose (`client`)."""
    if settings.client == "confluent":
        from pipeline.kafka.confluent.clients import ConfluentClients

        return ConfluentClients(settings)
    from pipeline.kafka.aiokafka.clients import AioClients

    return AioClients(settings)
