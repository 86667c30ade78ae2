"""librdkafka's configuration, made from the settings and the port's options.

The only place that knows librdkafka's configuration names, and where its error
callback and log lines are wired to the process's log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from pipeline.kafka.confluent.errors import remember_cause
from pipeline.kafka.connect_errors import explain, final
from pipeline.kafka.port import ConsumerOptions, ProducerOptions, ShareOptions
from pipeline.resilience.log_limit import RateLimitedLog
from pipeline.settings import PipelineSettings

log = logging.getLogger("pipeline.kafka.librdkafka")


class _SaidByTheError(logging.Filter):
    """librdkafka's own lines about a refused login or an untrusted certificate: the error
    callback says it, explained (above), or the error the caller gets does."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not final(record.getMessage())


log.addFilter(_SaidByTheError())

MIN_PREFETCH_KBYTES = 256
"""librdkafka's prefetch is one fetch's worth per partition, as aiokafka buffers; the bound
acts per partition, so a larger one grows a backlogged worker's memory
(docs/operations/tuning.md)."""
PREFETCH_BACKOFF_MS = 20
"""How soon librdkafka fetches again for a partition whose prefetch is full; its 1 s default
starves a one-fetch prefetch (figures in docs/operations/tuning.md)."""
STARTING_S = 30.0
"""A client's first seconds: a refusal then ends the call that started it (said by its error)."""
PRODUCER_LINGER_MS = 1
"""The runtime batches already; this only lets one batch's records leave in one request."""
PRODUCER_QUEUE_MESSAGES = 1_000_000
"""The runtime bounds bytes in flight itself; librdkafka's count limit must not bind first."""


def _error_reporter(settings: PipelineSettings) -> Callable[[Any], None]:
    """librdkafka's error callback: logged, and a connection's cause kept for the error raised
    when a call then fails with nothing but "Failed to get metadata" (confluent_errors).

    A refused login or an untrusted certificate in a client's first seconds is said once, by
    that error; later (credentials revoked under a running worker) it is logged, explained.
    """
    created = time.monotonic()
    refusals = RateLimitedLog(log, "refused connections", per_interval=1, interval_s=60)

    def report(error: Any) -> None:
        text = str(error.str()) if hasattr(error, "str") else str(error)
        if final(text):
            remember_cause(text, settings)
            if time.monotonic() - created > STARTING_S:
                refusals.log(logging.ERROR, "%s", explain(text, settings))
            return
        log.warning("librdkafka: %s", error)

    return report


def client_config(settings: PipelineSettings) -> dict[str, Any]:
    """Connection settings shared by librdkafka producers, consumers and admins."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "client.id": settings.client_id,
        "security.protocol": settings.security_protocol.lower(),
        "error_cb": _error_reporter(settings),
        "logger": log,
    }
    if settings.sasl_mechanism is not None:
        config["sasl.mechanism"] = settings.sasl_mechanism
        config["sasl.username"] = settings.sasl_username
        if settings.sasl_password is not None:
            config["sasl.password"] = settings.sasl_password.get_secret_value()
    if settings.ssl_cafile is not None:
        config["ssl.ca.location"] = str(settings.ssl_cafile)
    if settings.ssl_certfile is not None:
        config["ssl.certificate.location"] = str(settings.ssl_certfile)
    if settings.ssl_keyfile is not None:
        config["ssl.key.location"] = str(settings.ssl_keyfile)
    if settings.ssl_key_password is not None:
        config["ssl.key.password"] = settings.ssl_key_password.get_secret_value()
    return config


def consumer_config(settings: PipelineSettings, options: ConsumerOptions) -> dict[str, Any]:
    config = client_config(settings)
    config.update(
        {
            "client.id": options.client_id or settings.client_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": options.start,
            "isolation.level": options.isolation,
            "max.partition.fetch.bytes": options.max_partition_fetch_bytes,
            "fetch.max.bytes": options.fetch_max_bytes,
            "queued.max.messages.kbytes": max(
                MIN_PREFETCH_KBYTES, options.max_partition_fetch_bytes // 1024
            ),
            "fetch.queue.backoff.ms": PREFETCH_BACKOFF_MS,
            "max.poll.interval.ms": max(options.rebalance_timeout_ms, options.session_timeout_ms),
        }
    )
    if options.group_id is None:
        # librdkafka wants one even for assigned partitions; nothing joins or commits it.
        config["group.id"] = f"{settings.client_id}-reader"
        return config
    config["group.id"] = options.group_id
    if options.group_instance_id is not None:
        config["group.instance.id"] = options.group_instance_id
    protocol = settings.rebalance_protocol
    if protocol == "consumer":
        # KIP-848: the broker owns assignment, session and heartbeat settings.
        config["group.protocol"] = "consumer"
    else:
        config["session.timeout.ms"] = options.session_timeout_ms
        config["heartbeat.interval.ms"] = options.heartbeat_interval_ms
        config["partition.assignment.strategy"] = (
            "cooperative-sticky" if protocol == "cooperative" else "roundrobin"
        )
    return config


def producer_config(settings: PipelineSettings, options: ProducerOptions) -> dict[str, Any]:
    config = client_config(settings)
    delivery_timeout_ms = options.request_timeout_ms
    config.update(
        {
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": PRODUCER_LINGER_MS,
            "batch.size": options.batch_bytes,
            "message.max.bytes": options.max_request_bytes,
            "request.timeout.ms": options.request_timeout_ms,
            "compression.type": options.compression,
            "queue.buffering.max.messages": PRODUCER_QUEUE_MESSAGES,
        }
    )
    if options.transactional_id is not None:
        config["transactional.id"] = options.transactional_id
        config["transaction.timeout.ms"] = options.transaction_timeout_ms
        delivery_timeout_ms = min(delivery_timeout_ms, options.transaction_timeout_ms)
    config["message.timeout.ms"] = delivery_timeout_ms
    return config


def share_consumer_config(settings: PipelineSettings, options: ShareOptions) -> dict[str, Any]:
    """A share group member acknowledging each record itself, `max_records` per poll."""
    config = client_config(settings)
    config.update(
        {
            "client.id": options.client_id or settings.client_id,
            "group.id": options.group_id,
            "share.acknowledgement.mode": "explicit",
            "max.poll.records": options.max_records,
        }
    )
    return config
