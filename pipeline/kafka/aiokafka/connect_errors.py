"""aiokafka's failed bootstrap, explained (pipeline.kafka.connect_errors).

aiokafka raises "Unable to bootstrap from [...]" for every cause and logs
the real one a line earlier; a filter on its logger keeps that line's error
(and drops the line when the error raised will say it), and a client's
start raises the explanation instead.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.errors import KafkaConnectionError

from pipeline.kafka.connect_errors import explain, final
from pipeline.settings import PipelineSettings

CLIENT_LOGGER = "aiokafka"


class _LastCause(logging.Filter):
    """Keeps the error of aiokafka's latest failed bootstrap connection."""

    def __init__(self) -> None:
        super().__init__()
        self.cause: BaseException | None = None
        self.starting = 0
        """Clients in their start: a cause seen now is raised by it, so not logged twice."""

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("Unable connect to") and isinstance(record.args, tuple):
            found = [arg for arg in record.args if isinstance(arg, BaseException)]
            if found:
                self.cause = found[-1]
                # Refused credentials or an unknown CA during a start: the error raised says
                # so, once. Later (credentials revoked under a running worker) the line stays.
                return not (self.starting and final(str(self.cause)))
        return True


_last = _LastCause()


def _install() -> None:
    logger = logging.getLogger(CLIENT_LOGGER)
    if _last not in logger.filters:
        logger.addFilter(_last)


def explained(start: Callable[[], Awaitable[Any]], settings: PipelineSettings) -> Callable[[], Any]:
    """`start`, raising ClusterConnectionError with the cause where aiokafka gives none."""
    _install()

    async def start_explained() -> Any:
        _last.cause = None
        _last.starting += 1
        try:
            return await start()
        except KafkaConnectionError as exc:
            raise explain(_last.cause, settings) from exc
        finally:
            _last.starting -= 1

    return start_explained
