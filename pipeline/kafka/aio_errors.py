"""aiokafka's exceptions turned into the port's, at the adapter's edge."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from aiokafka.errors import KafkaError

from pipeline.kafka.port import KafkaClientError

P = ParamSpec("P")
T = TypeVar("T")


def translated(call: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Raise KafkaClientError (retriable or not) where aiokafka raises a KafkaError."""

    @functools.wraps(call)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await call(*args, **kwargs)
        except KafkaError as exc:
            raise KafkaClientError(
                f"{type(exc).__name__}: {exc}", retriable=bool(exc.retriable)
            ) from exc

    return wrapper
