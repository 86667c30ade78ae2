"""The Kafka client's log lines at the level their cause deserves.

aiokafka logs a failed group-coordinator lookup at ERROR even when the
error is retriable and the lookup succeeds a moment later, as it does on
every fresh cluster while `__consumer_offsets` is created: a healthy worker
start then shows `ERROR ... CoordinatorNotAvailableError`, and people learn
to ignore ERROR lines. Retriable ones become INFO here; anything else keeps
its level.
"""

from __future__ import annotations

import logging

COORDINATOR_LOGGER = "aiokafka.consumer.group_coordinator"
RETRIED_MESSAGES = ("Group Coordinator Request failed",)


class RetriableAtInfo(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR or not str(record.msg).startswith(RETRIED_MESSAGES):
            return True
        error = record.args[0] if isinstance(record.args, tuple) and record.args else None
        if not getattr(error, "retriable", False):
            return True
        record.levelno = logging.INFO
        record.levelname = logging.getLevelName(logging.INFO)
        return logging.getLogger(record.name).isEnabledFor(logging.INFO)


def quiet_retriable_client_errors() -> None:
    """Install the filter once per process (CLI commands that join consumer groups)."""
    logger = logging.getLogger(COORDINATOR_LOGGER)
    if not any(isinstance(existing, RetriableAtInfo) for existing in logger.filters):
        logger.addFilter(RetriableAtInfo())
