"""confluent-kafka's errors turned into the port's, at the adapter's edge."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from confluent_kafka import KafkaError, KafkaException

from pipeline.kafka.port import KafkaClientError

P = ParamSpec("P")
T = TypeVar("T")


def from_kafka_error(error: KafkaError) -> KafkaClientError:
    """Named the way aiokafka's errors are (the code's name first), so logs read alike."""
    return KafkaClientError(f"{error.name()}: {error.str()}", retriable=error.retriable())


def as_port_error(exc: BaseException) -> BaseException:
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        translated_error = from_kafka_error(exc.args[0])
        translated_error.__cause__ = exc
        return translated_error
    if isinstance(exc, KafkaException):
        translated_error = KafkaClientError(f"KafkaException: {exc}")
        translated_error.__cause__ = exc
        return translated_error
    return exc


def translated(call: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Raise KafkaClientError (retriable or not) where confluent-kafka raises a KafkaException."""

    @functools.wraps(call)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await call(*args, **kwargs)
        except KafkaException as exc:
            raise as_port_error(exc) from exc

    return wrapper
