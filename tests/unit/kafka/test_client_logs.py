"""aiokafka's retriable coordinator errors are INFO, not ERROR; the others keep their level."""

from __future__ import annotations

import logging

import pytest
from aiokafka.errors import CoordinatorNotAvailableError, GroupAuthorizationFailedError

from pipeline.telemetry.client_logs import (
    COORDINATOR_LOGGER,
    RepeatLimiter,
    quiet_retriable_client_errors,
)


@pytest.fixture
def coordinator_log(caplog: pytest.LogCaptureFixture) -> logging.Logger:
    quiet_retriable_client_errors()
    quiet_retriable_client_errors()  # twice: still one filter
    logger = logging.getLogger(COORDINATOR_LOGGER)
    assert len(logger.filters) == 1
    caplog.set_level(logging.INFO, logger=COORDINATOR_LOGGER)
    return logger


def test_a_retriable_lookup_failure_is_info(
    coordinator_log: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    coordinator_log.error("Group Coordinator Request failed: %s", CoordinatorNotAvailableError())
    assert [record.levelname for record in caplog.records] == ["INFO"]


def test_a_fatal_one_stays_an_error(
    coordinator_log: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    coordinator_log.error("Group Coordinator Request failed: %s", GroupAuthorizationFailedError())
    coordinator_log.error("Heartbeat failed: %r", CoordinatorNotAvailableError())
    assert [record.levelname for record in caplog.records] == ["ERROR", "ERROR"]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_repeated_client_line_is_shown_once_per_interval_with_a_count() -> None:
    clock = Clock()
    limiter = RepeatLimiter(interval_s=10, clock=clock)

    def record(name: str, msg: str, *args: object) -> logging.LogRecord:
        return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)

    shown = []
    for second in range(25):
        clock.now = float(second)
        for _ in range(10):  # ten reconnect attempts a second, as during an outage
            line = record("aiokafka.conn", "Unable connect to node with id %s: %s", 1, "refused")
            if limiter.filter(line):
                shown.append(line.getMessage())
    assert shown == [
        "Unable connect to node with id 1: refused",
        "Unable connect to node with id 1: refused (99 more like it in the last 10s not shown)",
        "Unable connect to node with id 1: refused (99 more like it in the last 10s not shown)",
    ]
    ours = record("pipeline.gateway", "503 broker_error")
    assert all(limiter.filter(ours) for _ in range(5))  # only the client's lines are limited
