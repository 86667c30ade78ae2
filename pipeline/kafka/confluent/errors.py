"""confluent-kafka's errors turned into the port's, at the adapter's edge."""

from __future__ import annotations

import time
from typing import ParamSpec, TypeVar

from confluent_kafka import KafkaError, KafkaException

from pipeline.kafka.connect_errors import explain
from pipeline.kafka.port import KafkaClientError
from pipeline.kafka.translation import translating
from pipeline.settings import PipelineSettings

P = ParamSpec("P")
T = TypeVar("T")
CAUSE_KEPT_S = 60.0
CONNECTION_CODES = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._TIMED_OUT,
        KafkaError._AUTHENTICATION,
        KafkaError._SSL,
    }
)
_cause: tuple[float, str, PipelineSettings] | None = None
COORDINATOR_MOVING = frozenset(
    {
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    }
)
"""What a fresh cluster answers group requests with until the group's coordinator is
elected and loaded. librdkafka does not call NOT_COORDINATOR retriable: the first
`pipeline replay` on a new cluster failed with it (`python -m tests.integration.fresh_cluster`)."""


def coordinator_moving(exc: Exception) -> bool:
    """Worth asking again: librdkafka's own verdict, or a coordinator still moving."""
    if not isinstance(exc, KafkaException):
        return False
    error: KafkaError = exc.args[0]
    return bool(error.retriable()) or error.code() in COORDINATOR_MOVING


def remember_cause(text: str, settings: PipelineSettings) -> None:
    """A refused login or an untrusted certificate, reported by librdkafka's error callback."""
    global _cause
    _cause = (time.monotonic(), text, settings)


def _explained(error: KafkaError) -> BaseException | None:
    """The connection's real cause, when a call failed for want of one and it is recent."""
    global _cause
    if error.code() not in CONNECTION_CODES or _cause is None:
        return None
    at, text, settings = _cause
    if time.monotonic() - at > CAUSE_KEPT_S:
        return None
    _cause = None
    return explain(text, settings)


def from_kafka_error(error: KafkaError) -> KafkaClientError:
    """Named the way aiokafka's errors are (the code's name first), so logs read alike."""
    return KafkaClientError(f"{error.name()}: {error.str()}", retriable=error.retriable())


def as_port_error(exc: BaseException) -> BaseException:
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        explained = _explained(exc.args[0])
        if explained is not None:
            return explained
        translated_error = from_kafka_error(exc.args[0])
        translated_error.__cause__ = exc
        return translated_error
    if isinstance(exc, KafkaException):
        translated_error = KafkaClientError(f"KafkaException: {exc}")
        translated_error.__cause__ = exc
        return translated_error
    return exc


translated = translating(KafkaException, as_port_error)
"""Raise KafkaClientError (retriable or not) where confluent-kafka raises a KafkaException."""
