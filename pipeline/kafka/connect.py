"""The one place that decides which Kafka client the process uses."""

from __future__ import annotations

from pipeline.kafka.port import Clients
from pipeline.settings import PipelineSettings


def connect(settings: PipelineSettings) -> Clients:
    """Clients for the cluster the settings name (aiokafka's, the only adapter so far)."""
    from pipeline.kafka.aio import AioClients

    return AioClients(settings)
