"""aiokafka's constructor arguments, made from the settings and the port's options.

The only place that knows aiokafka's argument names; the clients (clients.py) are made
from these and nothing else.
"""

from __future__ import annotations

from typing import Any

from pipeline.kafka.port import ConsumerOptions, ProducerOptions
from pipeline.settings import PipelineSettings

ADMIN_REQUEST_TIMEOUT_MS = 15_000


def client_kwargs(settings: PipelineSettings) -> dict[str, Any]:
    """Connection arguments shared by aiokafka producers, consumers and admins."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": settings.client_id,
        "security_protocol": settings.security_protocol,
    }
    context = settings.ssl_context()
    if context is not None:
        kwargs["ssl_context"] = context
    if settings.sasl_mechanism is not None:
        kwargs["sasl_mechanism"] = settings.sasl_mechanism
        kwargs["sasl_plain_username"] = settings.sasl_username
        kwargs["sasl_plain_password"] = (
            settings.sasl_password.get_secret_value() if settings.sasl_password else None
        )
    return kwargs


def consumer_kwargs(settings: PipelineSettings, options: ConsumerOptions) -> dict[str, Any]:
    return {
        **client_kwargs(settings),
        "client_id": options.client_id or settings.client_id,
        "group_id": options.group_id,
        "group_instance_id": options.group_instance_id,
        "enable_auto_commit": False,
        "auto_offset_reset": options.start,
        "isolation_level": options.isolation,
        "max_partition_fetch_bytes": options.max_partition_fetch_bytes,
        "fetch_max_bytes": options.fetch_max_bytes,
        "session_timeout_ms": options.session_timeout_ms,
        "heartbeat_interval_ms": options.heartbeat_interval_ms,
        "rebalance_timeout_ms": options.rebalance_timeout_ms,
    }


def producer_kwargs(settings: PipelineSettings, options: ProducerOptions) -> dict[str, Any]:
    return {
        **client_kwargs(settings),
        "acks": "all",
        "enable_idempotence": True,
        "max_batch_size": options.batch_bytes,
        "max_request_size": options.max_request_bytes,
        "request_timeout_ms": options.request_timeout_ms,
        "compression_type": None if options.compression == "none" else options.compression,
        "transactional_id": options.transactional_id,
        "transaction_timeout_ms": options.transaction_timeout_ms,
    }


def admin_kwargs(settings: PipelineSettings) -> dict[str, Any]:
    return {**client_kwargs(settings), "request_timeout_ms": ADMIN_REQUEST_TIMEOUT_MS}
