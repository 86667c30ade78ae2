"""aiokafka's retriable coordinator errors are INFO, not ERROR; the others keep their level."""

from __future__ import annotations

import logging

import pytest
from aiokafka.errors import CoordinatorNotAvailableError, GroupAuthorizationFailedError

from pipeline.client_logs import COORDINATOR_LOGGER, quiet_retriable_client_errors


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
