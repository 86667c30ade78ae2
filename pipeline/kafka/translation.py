"""Each adapter's calls raise the port's errors, never its client's: one decorator for both.

The runtime handles `KafkaClientError` (retriable or not) and nothing
client-specific; each adapter knows which of its client's exceptions to
catch and how to translate them (its `errors` module), and wraps its
coroutines with the decorator this makes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


def translating(
    caught: type[BaseException], translate: Callable[[BaseException], BaseException]
) -> Callable[[Callable[P, Coroutine[Any, Any, T]]], Callable[P, Coroutine[Any, Any, T]]]:
    """A decorator raising `translate(exc)` where the wrapped call raises `caught`."""

    def decorate(call: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        @functools.wraps(call)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            try:
                return await call(*args, **kwargs)
            except caught as exc:
                raise translate(exc) from exc

        return wrapper

    return decorate
