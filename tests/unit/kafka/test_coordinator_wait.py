"""Group questions asked again while a coordinator moves, and only then."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka import KafkaError, KafkaException

from pipeline.kafka import coordinator_wait
from pipeline.kafka.confluent.errors import coordinator_moving
from pipeline.kafka.coordinator_wait import (
    asking_until_coordinated,
    asking_until_coordinated_blocking,
)


class Moving(Exception):
    pass


def answers_after(failures: int) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def ask() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise Moving
        return "committed"

    return calls, ask


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(coordinator_wait, "COORDINATOR_RETRY_S", 0.001)


def test_a_moving_coordinator_is_asked_again_until_it_answers() -> None:
    calls, ask = answers_after(3)
    assert asking_until_coordinated_blocking(ask, lambda e: isinstance(e, Moving)) == "committed"
    assert len(calls) == 4


async def test_the_same_on_the_loop() -> None:
    calls, ask_blocking = answers_after(2)

    async def ask() -> str:
        return ask_blocking()

    assert await asking_until_coordinated(ask, lambda e: isinstance(e, Moving)) == "committed"
    assert len(calls) == 3


def test_any_other_error_is_raised_at_once() -> None:
    calls, ask = answers_after(5)
    with pytest.raises(Moving):
        asking_until_coordinated_blocking(ask, lambda e: False)
    assert len(calls) == 1


def test_a_coordinator_that_never_comes_is_given_up_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(coordinator_wait, "COORDINATOR_WAIT_S", 0.02)
    calls, ask = answers_after(10**9)
    with pytest.raises(Moving):
        asking_until_coordinated_blocking(ask, lambda e: isinstance(e, Moving))
    assert len(calls) >= 2


@pytest.mark.parametrize(
    ("code", "moving"),
    [
        (KafkaError.NOT_COORDINATOR, True),  # librdkafka does not call this one retriable
        (KafkaError.COORDINATOR_NOT_AVAILABLE, True),
        (KafkaError.COORDINATOR_LOAD_IN_PROGRESS, True),
        (KafkaError.GROUP_AUTHORIZATION_FAILED, False),
        (KafkaError.UNKNOWN_TOPIC_OR_PART, False),
    ],
)
def test_which_confluent_errors_mean_the_coordinator_moves(code: int, moving: bool) -> None:
    assert coordinator_moving(KafkaException(KafkaError(code))) is moving
    assert coordinator_moving(ValueError("not kafka")) is False
