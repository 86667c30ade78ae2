import asyncio

import pytest

from pipeline.resilience.backpressure import ByteBudget
from pipeline.resilience.ratelimit import TokenBucket


async def test_budget_makes_the_second_caller_wait_until_release() -> None:
    budget = ByteBudget(100)
    await budget.acquire(80)
    waiter = asyncio.create_task(budget.acquire(50))
    await asyncio.sleep(0)
    assert not waiter.done()
    budget.release(80)
    await asyncio.wait_for(waiter, timeout=1)
    assert budget.in_use == 50


async def test_budget_lets_one_oversized_request_through_alone() -> None:
    budget = ByteBudget(10)
    await asyncio.wait_for(budget.acquire(500), timeout=1)
    assert not budget.try_acquire(1)
    budget.release(500)
    assert budget.try_acquire(1)


def test_budget_rejects_nonpositive_limit() -> None:
    with pytest.raises(ValueError):
        ByteBudget(0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_bucket_spends_burst_then_paces_at_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(100, burst=10, clock=clock)
    assert bucket.delay_for(10) == 0
    assert bucket.delay_for(50) == pytest.approx(0.5)
    clock.now = 0.5
    assert bucket.delay_for(0) == 0


def test_bucket_does_not_bank_idle_time_beyond_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(100, burst=10, clock=clock)
    clock.now = 100.0
    assert bucket.delay_for(110) == pytest.approx(1.0)
