"""aiokafka's exceptions turned into the port's, at the adapter's edge."""

from __future__ import annotations

import asyncio
from typing import ParamSpec, TypeVar

from aiokafka.errors import KafkaError

from pipeline.kafka.port import KafkaClientError
from pipeline.kafka.translation import translating

P = ParamSpec("P")
T = TypeVar("T")


def as_port_error(exc: BaseException) -> BaseException:
    if isinstance(exc, KafkaError):
        error = KafkaClientError(f"{type(exc).__name__}: {exc}", retriable=bool(exc.retriable))
        error.__cause__ = exc
        return error
    return exc


def translated_outcome(future: asyncio.Future[T]) -> asyncio.Future[T]:
    """A future with `future`'s result, or its aiokafka error as a KafkaClientError.

    For acknowledgements: one more future and callback per batch, not per record.
    """
    outcome: asyncio.Future[T] = asyncio.get_running_loop().create_future()

    def copy(done: asyncio.Future[T]) -> None:
        if outcome.done():
            return
        if done.cancelled():
            outcome.cancel()
        elif (exc := done.exception()) is not None:
            outcome.set_exception(as_port_error(exc))
        else:
            outcome.set_result(done.result())

    future.add_done_callback(copy)
    return outcome


translated = translating(KafkaError, as_port_error)
"""Raise KafkaClientError (retriable or not) where aiokafka raises a KafkaError."""
