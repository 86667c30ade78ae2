"""A process's exit cannot hang on a task that swallows its cancellation."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from pipeline.resilience.tasks import cancel_and_wait, run_process


class Stubborn:
    """A task that swallows cancellation, as a library task caught mid-rebalance can."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.released = False

    async def run(self) -> None:
        self.started.set()
        while not self.released:
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                continue


def test_a_leftover_task_that_ignores_cancel_costs_a_bounded_wait(
    caplog: pytest.LogCaptureFixture,
) -> None:
    background: list[asyncio.Future[None]] = []

    async def main() -> int:
        stubborn = Stubborn()
        background.append(asyncio.ensure_future(stubborn.run()))
        await stubborn.started.wait()
        return 7

    began = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="pipeline.process"):
        assert run_process(main(), leftover_timeout_s=0.2) == 7
    assert time.monotonic() - began < 5
    assert "1 background task(s) did not stop" in caplog.text


async def test_cancel_and_wait_gives_up_on_a_stubborn_task(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stubborn = Stubborn()
    task = asyncio.ensure_future(stubborn.run())
    await stubborn.started.wait()
    with caplog.at_level(logging.WARNING, logger="pipeline.process"):
        assert await cancel_and_wait(task, 0.1, "the stubborn task") is False
    assert "the stubborn task did not stop" in caplog.text
    stubborn.released = True
    assert await cancel_and_wait(task, 1.0, "the released task") is True
    assert await cancel_and_wait(asyncio.ensure_future(asyncio.sleep(3600)), 1.0, "sleep") is True


def test_the_event_loop_is_the_one_pipeline_event_loop_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import uvloop

    from pipeline.errors import PipelineError
    from pipeline.resilience.tasks import new_event_loop

    for value, on_uvloop in (("", True), ("asyncio", False), ("UVLoop", True)):
        monkeypatch.setenv("PIPELINE_EVENT_LOOP", value)
        loop = new_event_loop()
        try:
            assert isinstance(loop, uvloop.Loop) is on_uvloop
            assert loop.run_until_complete(asyncio.sleep(0, "ran")) == "ran"
        finally:
            loop.close()
    monkeypatch.setenv("PIPELINE_EVENT_LOOP", "trio")
    with pytest.raises(PipelineError, match="use one of asyncio, uvloop"):
        new_event_loop()
