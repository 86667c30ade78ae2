"""A handler that never returns costs its record, not its partition; a mistyped dependency
stops the worker instead of becoming a second breaker."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging

import pytest

from pipeline.errors import ConfigError
from pipeline.processor import Context, Processor
from pipeline.resilience.breaker import BreakerPolicy
from pipeline.resilience.retry import RetryPolicy
from pipeline.testing import TestPipeline
from pipeline.undeclared import UndeclaredDependencyError
from tests.unit.runtime.support import OUTPUT, SOURCE, Done, Step

HANG = "hang"


async def hangs_when_told(step: Step, ctx: Context) -> Done:
    if step.mode == HANG:
        await asyncio.Event().wait()  # an await nothing will ever complete
    return Done(key=step.key, n=step.n)


def hanging(lanes: int, timeout_s: float | None = 0.2) -> Processor[Step]:
    return Processor(
        "hangs",
        SOURCE,
        hangs_when_told,
        outputs=(OUTPUT,),
        lanes=lanes,
        handler_timeout_s=timeout_s,
        retry=RetryPolicy(attempts=2, base_delay_s=0.001, max_delay_s=0.01),
    )


@pytest.mark.parametrize("lanes", [1, 4])
async def test_a_hung_call_is_cancelled_retried_and_dead_lettered_with_its_deadline(
    lanes: int, caplog: pytest.LogCaptureFixture
) -> None:
    steps = [Step(key=f"k{n % 10}", n=n, mode=HANG if n == 37 else "") for n in range(300)]
    caplog.set_level(logging.WARNING, "pipeline.worker")
    async with TestPipeline(hanging(lanes), keep_retry=True) as pipeline:
        await pipeline.publish(SOURCE, steps)
        await pipeline.processed(timeout_s=20)
        [dead] = pipeline.dead_letters()
        outputs = pipeline.outputs(OUTPUT)
    assert dead.error_type == "HandlerTimeout"
    assert "within its deadline of 0.2s" in dead.error_message
    assert dead.attempts == 2
    by_key: dict[str, list[int]] = {}
    for done in outputs:
        by_key.setdefault(done.key, []).append(done.n)
    assert sorted(n for ns in by_key.values() for n in ns) == [n for n in range(300) if n != 37]
    assert all(ns == sorted(ns) for ns in by_key.values())  # per-key order held
    where = f"{SOURCE.name}-{dead.source_partition}@{dead.source_offset}"
    lines = [r.getMessage() for r in caplog.records if "past its deadline" in r.getMessage()]
    assert len(lines) == 1 and where in lines[0]


async def test_a_handler_that_ignores_the_cancel_keeps_its_outcome() -> None:
    async def shrugs(step: Step, ctx: Context) -> Done:
        with contextlib.suppress(asyncio.CancelledError):  # swallows the cancel, finishes
            await asyncio.sleep(0.5)
        return Done(key=step.key, n=step.n)

    processor = dataclasses.replace(hanging(1), handler=shrugs)
    async with TestPipeline(processor, keep_retry=True) as pipeline:
        await pipeline.publish(SOURCE, [Step(key="k", n=0), Step(key="k", n=1)])
        await pipeline.processed(timeout_s=20)
        assert [done.n for done in pipeline.outputs(OUTPUT)] == [0, 1]
        assert pipeline.dead_letters() == []
        # The batch after it is not hit by a stray cancel.
        await pipeline.publish(SOURCE, [Step(key="k", n=2)])
        await pipeline.processed(timeout_s=20)
        assert [done.n for done in pipeline.outputs(OUTPUT)] == [0, 1, 2]


async def test_without_a_deadline_a_slow_call_is_waited_for() -> None:
    async def slow(step: Step, ctx: Context) -> Done:
        await asyncio.sleep(0.3)
        return Done(key=step.key, n=step.n)

    processor = dataclasses.replace(hanging(1, timeout_s=None), handler=slow)
    async with TestPipeline(processor) as pipeline:
        await pipeline.publish(SOURCE, [Step(key="k", n=0)])
        await pipeline.processed(timeout_s=20)
        assert pipeline.dead_letters() == []


def test_a_deadline_that_is_not_positive_is_refused() -> None:
    with pytest.raises(ConfigError, match="handler_timeout_s must be positive"):
        hanging(1, timeout_s=0)


async def test_a_mistyped_dependency_stops_the_worker_naming_the_declared_ones() -> None:
    async def lookup(n: int) -> int:
        return n

    async def calls_a_typo(step: Step, ctx: Context) -> Done:
        await ctx.call("paymnets", lookup, step.n)
        return Done(key=step.key, n=step.n)

    processor = Processor(
        "typo",
        SOURCE,
        calls_a_typo,
        outputs=(OUTPUT,),
        dependencies={"payments": BreakerPolicy()},
    )
    pipeline = TestPipeline(processor)
    await pipeline.start()
    await pipeline.publish(SOURCE, [Step(key="k", n=n) for n in range(20)])
    assert pipeline._run is not None
    await asyncio.wait_for(asyncio.shield(pipeline._run), 20)  # the worker stops by itself
    with pytest.raises(Exception, match=r"'paymnets'.*declares only 'payments'"):
        await pipeline.stop()
    assert pipeline.dead_letters() == []  # no good event was dead-lettered for it
    assert pipeline.runtime is not None
    assert [b.name for b in pipeline.runtime.breakers.all()] == []  # no second breaker
    assert issubclass(UndeclaredDependencyError, Exception)
