"""Log set-up for long-running processes, and the Kafka client's lines at the level they deserve.

aiokafka logs a failed group-coordinator lookup at ERROR even when the
error is retriable and the lookup succeeds a moment later, as it does on
every fresh cluster while `__consumer_offsets` is created: a healthy worker
start then shows `ERROR ... CoordinatorNotAvailableError`, and people learn
to ignore ERROR lines. Retriable ones become INFO here.

And while a broker is away, aiokafka logs every reconnect attempt, ten a
second per connection: a gateway wrote 76,000 lines in a 40-second outage,
which buries the lines that say what happened. A line of the client's that
repeats is shown once per interval, with a count of those left out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from pipeline.telemetry.logs import JsonFormatter, TextFormatter, choose_format

COORDINATOR_LOGGER = "aiokafka.consumer.group_coordinator"
RETRIED_MESSAGES = ("Group Coordinator Request failed",)
CLIENT_LOGGER = "aiokafka"
REPEAT_INTERVAL_S = 10.0
LOG_FORMAT = "%(asctime)s {who}%(levelname)s %(name)s: %(message)s"


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


class RepeatLimiter(logging.Filter):
    """The client's lines: each message template at most once per interval, then a count."""

    def __init__(
        self, interval_s: float = REPEAT_INTERVAL_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}
        self._held: dict[tuple[str, str], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(CLIENT_LOGGER):
            return True
        key = (record.name, str(record.msg))
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        self._last[key] = now
        held = self._held.pop(key, 0)
        if held and last is not None:
            # No "%" in it, so the record's own args still format its own message.
            record.msg = (
                f"{record.msg} ({held} more like it in the last {now - last:.0f}s not shown)"
            )
        return True


def quiet_retriable_client_errors() -> None:
    """Install the coordinator filter once per process (CLI commands that join consumer groups)."""
    logger = logging.getLogger(COORDINATOR_LOGGER)
    if not any(isinstance(existing, RetriableAtInfo) for existing in logger.filters):
        logger.addFilter(RetriableAtInfo())


def setup_process_logging(
    level: str = "INFO", who: str = "", log_format: str | None = None
) -> None:
    """Lines on stderr for a long-running process (JSON or text); the client's kept in check.

    The repeat limit sits on the handler: a logger's own filters do not see
    what its children log, and aiokafka logs from a dozen modules.
    """
    chosen = choose_format(log_format)
    logging.basicConfig(level=level.upper())
    formatter: logging.Formatter = (
        JsonFormatter()
        if chosen == "json"
        else TextFormatter(LOG_FORMAT.format(who=f"{who} " if who else ""))
    )
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)
    logging.getLogger(CLIENT_LOGGER).setLevel(logging.WARNING)
    quiet_retriable_client_errors()
    for handler in logging.getLogger().handlers:
        if not any(isinstance(existing, RepeatLimiter) for existing in handler.filters):
            handler.addFilter(RepeatLimiter())
