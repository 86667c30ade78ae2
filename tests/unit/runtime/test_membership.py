"""After the loop stood still, nothing is published until the group confirms the member."""

from __future__ import annotations

import asyncio
import logging

import pytest

from pipeline.metrics import Metrics
from pipeline.runtime.membership import MembershipGuard


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Coordinator:
    """Answers the membership check as the test says, counting the checks."""

    def __init__(self, member: bool) -> None:
        self.member = member
        self.checks = 0
        self.answer = asyncio.Event()

    async def confirm(self) -> bool:
        self.checks += 1
        await self.answer.wait()
        return self.member


def guard_for(
    coordinator: Coordinator, clock: Clock, metrics: Metrics | None = None
) -> MembershipGuard:
    return MembershipGuard(coordinator.confirm, 7.0, metrics or Metrics(), clock=clock)


async def test_without_a_stall_publishing_asks_nobody() -> None:
    coordinator, clock = Coordinator(member=False), Clock()
    guard = guard_for(coordinator, clock)
    clock.now += 0.2
    assert await guard.publishable()
    assert coordinator.checks == 0


async def test_a_stall_past_the_threshold_makes_every_publish_wait_for_one_check() -> None:
    coordinator, clock = Coordinator(member=True), Clock()
    guard = guard_for(coordinator, clock)
    clock.now += 15.0  # frozen: the publishing task runs before the ticker
    waiting = [asyncio.ensure_future(guard.publishable()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiting)
    coordinator.answer.set()
    assert await asyncio.gather(*waiting) == [True, True, True]
    assert coordinator.checks == 1
    assert await guard.publishable()  # confirmed: no second check
    assert coordinator.checks == 1


async def test_a_member_the_group_dropped_abandons_its_batches_until_the_next_assignment(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "pipeline.worker")
    metrics = Metrics()
    coordinator, clock = Coordinator(member=False), Clock()
    guard = guard_for(coordinator, clock, metrics)
    clock.now += 15.0
    coordinator.answer.set()
    assert not await guard.publishable()
    assert not await guard.publishable()
    assert coordinator.checks == 1
    guard.regained()
    assert await guard.publishable()
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "the event loop stood still for 14.8s" in messages
    assert "run_in='thread'" in messages and "dropped this replica" in messages
    assert metrics.total("loop_stalls") == 1


async def test_a_short_stall_is_logged_but_checks_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "pipeline.worker")
    coordinator, clock = Coordinator(member=False), Clock()
    guard = guard_for(coordinator, clock)
    clock.now += 3.0
    guard._tick()
    assert await guard.publishable()
    assert coordinator.checks == 0
    assert "stood still for 2.8s" in caplog.text
