"""A group whose committed offset retention deleted: go on loudly from the log start, or stop.

Scenario 6 of the chaos suite (`pipeline chaos run --scenario retention`)
does this on a real cluster; here each policy on the in-memory broker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path

import pytest

from pipeline.kafka.memory import MemoryBroker, MemoryClients
from pipeline.processor import Context, Processor
from pipeline.publishing.producer import EventProducer
from pipeline.runtime.worker import EXIT_FAILED, EXIT_OK, Runtime
from tests.unit.runtime.support import (
    OUTPUT,
    SOURCE,
    Done,
    Step,
    all_committed,
    committed,
    new_broker,
    settings,
    start_replica,
    until,
    values,
)


async def echo(step: Step, ctx: Context) -> Done:
    return Done(key=step.key, n=step.n)


ECHO = Processor("keeper", SOURCE, echo, outputs=(OUTPUT,))


async def publish(broker: MemoryBroker, first: int, count: int) -> None:
    async with EventProducer(settings(), clients=MemoryClients(broker)) as producer:
        await producer.publish_many(
            SOURCE, [Step(key=f"k{n % 7}", n=n) for n in range(first, first + count)]
        )


async def stopped_group_behind_retention(tmp_path: Path) -> MemoryBroker:
    """A group that handled 300 events, then was stopped; 600 more came and retention
    deleted all but the last 100 of each partition."""
    broker = new_broker()
    await publish(broker, 0, 300)
    runtime, run = await start_replica(broker, ECHO, "r1", tmp_path)
    await until(lambda: all_committed(broker, "keeper"), "the first 300 committed")
    runtime.request_stop()
    assert await run == EXIT_OK
    await publish(broker, 300, 600)
    for log in broker.topic(SOURCE.name).partitions:
        broker.delete_records((SOURCE.name, log.partition), log.high_watermark - 100)
        assert committed(broker, "keeper")[log.partition] < log.log_start
    return broker


async def test_earliest_goes_on_from_the_log_start_with_a_warning_and_a_count(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broker = await stopped_group_behind_retention(tmp_path)
    caplog.set_level(logging.WARNING, "pipeline.worker")
    runtime, run = await start_replica(broker, ECHO, "r2", tmp_path)
    try:
        await until(lambda: all_committed(broker, "keeper"), "the rest committed")
        resets = runtime.metrics.total("offset_resets")
    finally:
        runtime.request_stop()
        assert await run == EXIT_OK
    assert resets == SOURCE.partitions
    warnings = [r.getMessage() for r in caplog.records if "retention deleted" in r.getMessage()]
    assert len(warnings) == SOURCE.partitions
    assert "Going on from offset" in warnings[0] and "PIPELINE_OFFSET_RESET=fail" in warnings[0]
    handled = sorted(int(str(fields["n"])) for _, _, fields in values(broker, OUTPUT.name))
    # The first 300, then exactly what retention kept (100 per partition): nothing else.
    assert handled[:300] == list(range(300))
    assert len(handled) == 300 + 100 * SOURCE.partitions


async def test_fail_stops_the_replica_naming_the_partition_and_commits_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broker = await stopped_group_behind_retention(tmp_path)
    before = committed(broker, "keeper")
    caplog.set_level(logging.ERROR, "pipeline.worker")
    strict = settings().model_copy(update={"offset_reset": "fail"})
    _, run = await start_replica(broker, ECHO, "r2", tmp_path, worker_settings=strict)
    assert await run == EXIT_FAILED
    assert committed(broker, "keeper") == before
    message = next(r.getMessage() for r in caplog.records if "offset_reset=fail" in r.getMessage())
    assert f"{SOURCE.name}-" in message and "is before the log start" in message
    assert "pipeline offsets reset --group keeper" in message and "--to-earliest" in message


HELD = dataclasses.replace(SOURCE, name="held-steps", partitions=1)


async def held_back_worker_overtaken_by_retention(
    tmp_path: Path, strict: bool
) -> tuple[MemoryBroker, Runtime, asyncio.Future[int], asyncio.Event]:
    """A running worker whose handler waits on its first record, its small bulkhead full
    (fetch paused); 400 more records come and retention deletes all but the last 50."""
    release = asyncio.Event()

    async def waits_on_the_first(step: Step, ctx: Context) -> Done:
        if step.n == 0:
            await release.wait()
        return Done(key=step.key, n=step.n)

    processor = Processor(
        "overtaken",
        HELD,
        waits_on_the_first,
        outputs=(OUTPUT,),
        queue_records=20,
        batch_records=10,
        handler_timeout_s=None,
    )
    broker = new_broker(HELD)
    async with EventProducer(settings(), clients=MemoryClients(broker)) as producer:
        await producer.publish_many(HELD, [Step(key="k", n=n) for n in range(100)])
    worker_settings = settings().model_copy(update={"offset_reset": "fail"}) if strict else None
    runtime, run = await start_replica(
        broker, processor, "r1", tmp_path, worker_settings=worker_settings
    )
    await until(lambda: runtime.partitions.paused, "the bulkhead full and its fetch paused")
    async with EventProducer(settings(), clients=MemoryClients(broker)) as producer:
        await producer.publish_many(HELD, [Step(key="k", n=n) for n in range(100, 500)])
    log = broker.topic(HELD.name).partitions[0]
    broker.delete_records((HELD.name, 0), log.high_watermark - 50)
    return broker, runtime, run, release


async def test_retention_under_a_running_worker_is_counted_and_logged_like_at_assignment(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "pipeline.worker")
    broker, runtime, run, release = await held_back_worker_overtaken_by_retention(tmp_path, False)
    release.set()
    try:
        await until(
            lambda: committed(broker, "overtaken", HELD.name).get(0) == 500, "the rest committed"
        )
        resets = runtime.metrics.total("offset_resets")
    finally:
        runtime.request_stop()
        assert await run == EXIT_OK
    assert resets == 1
    [warning] = [r.getMessage() for r in caplog.records if "retention deleted" in r.getMessage()]
    assert f"{HELD.name}-0: the worker's fetch position" in warning
    assert "Going on from offset 450" in warning
    handled = sorted(int(str(fields["n"])) for _, _, fields in values(broker, OUTPUT.name))
    # What it had fetched before the deletion, then what retention kept.
    assert handled[-50:] == list(range(450, 500))
    lost = int(warning.split("retention deleted ")[1].split()[0])
    assert len(handled) + lost == 500


async def test_retention_under_a_running_worker_with_fail_stops_the_replica(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, "pipeline.worker")
    broker, _, run, release = await held_back_worker_overtaken_by_retention(tmp_path, True)
    release.set()
    assert await asyncio.wait_for(run, 20) == EXIT_FAILED
    # Nothing past the gap was committed.
    assert committed(broker, "overtaken", HELD.name).get(0, 0) < 450
    handled = [int(str(fields["n"])) for _, _, fields in values(broker, OUTPUT.name)]
    assert all(n < 450 for n in handled)
    message = next(r.getMessage() for r in caplog.records if "offset_reset=fail" in r.getMessage())
    assert "the worker's fetch position" in message and "--to-earliest" in message
