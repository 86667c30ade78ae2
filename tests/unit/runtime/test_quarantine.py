"""A record in hand at K ends of its owner is quarantined by the next one, without running it.

On the in-memory broker: owners that end with a hung record in hand (a
stop whose drain cannot finish is such an end, as a kill or a drop from
the group is), clean hand-overs that must count nothing, and marks left
in the group's commit metadata as another replica would leave them.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from pipeline.kafka.memory import MemoryBroker, MemoryClients
from pipeline.kafka.port import Committed, TopicPartition
from pipeline.processor import Context, Processor
from pipeline.publishing.producer import EventProducer
from pipeline.runtime.quarantine import IN_FLIGHT, in_flight, strikes_of
from pipeline.runtime.worker import (
    EXIT_DRAIN_INCOMPLETE,
    EXIT_FAILED,
    EXIT_OK,
    Runtime,
    WorkerOptions,
)
from tests.unit.runtime.support import (
    OUTPUT,
    SOURCE,
    Done,
    Step,
    committed,
    dead_source_offsets,
    new_broker,
    outputs_by_key,
    settings,
    until,
)

ONE = dataclasses.replace(SOURCE, name="suspect-steps", partitions=1)
POISON = 37


def test_the_mark_is_read_only_on_its_own_offset_and_only_when_it_is_ours() -> None:
    assert strikes_of(Committed(10, in_flight(2)), 10) == 2
    assert strikes_of(Committed(10, in_flight(2)), 11) == 0  # retention moved the start
    assert strikes_of(Committed(10, "written by another tool"), 10) == 0
    assert strikes_of(Committed(10, IN_FLIGHT + "x"), 10) == 0
    assert strikes_of(None, 0) == 0


class Calls:
    def __init__(self) -> None:
        self.offsets: list[int] = []
        self.in_poison = asyncio.Event()


def hangs_on_the_poison(calls: Calls) -> Processor[Step]:
    async def handle(step: Step, ctx: Context) -> Done:
        assert ctx.record is not None
        calls.offsets.append(ctx.record.offset)
        if step.n == POISON:
            calls.in_poison.set()
            await asyncio.Event().wait()  # hangs, and no deadline cuts it off
        return Done(key=step.key, n=step.n)

    return Processor(
        "suspect",
        ONE,
        handle,
        outputs=(OUTPUT,),
        batch_records=50,
        handler_timeout_s=None,
    )


def replica(broker: MemoryBroker, processor: Processor[Step], n: int, tmp: Path) -> Runtime:
    options = WorkerOptions(
        replica_id=f"r{n}",
        handle_signals=False,
        commit_interval_s=0.02,
        cache_dir=tmp,
        drain_deadline_s=0.2,
    )
    return Runtime(settings(), processor, options, clients=MemoryClients(broker))


async def publish(broker: MemoryBroker, count: int) -> None:
    async with EventProducer(settings(), clients=MemoryClients(broker)) as producer:
        await producer.publish_many(ONE, [Step(key=f"k{n % 4}", n=n) for n in range(count)])


def mark(broker: MemoryBroker) -> Committed | None:
    return broker.group("suspect").commits.get(TopicPartition(ONE.name, 0))


async def test_a_record_that_hangs_every_owner_is_quarantined_and_the_rest_goes_on(
    tmp_path: Path,
) -> None:
    broker = new_broker(ONE)
    await publish(broker, 200)
    ends = 0
    while True:
        calls = Calls()
        runtime = replica(broker, hangs_on_the_poison(calls), ends, tmp_path)
        run = asyncio.ensure_future(runtime.run())
        poisoned = asyncio.ensure_future(calls.in_poison.wait())
        quarantined = asyncio.ensure_future(
            until(lambda: bool(dead_source_offsets(broker, ONE.name)), "a quarantine", 20)
        )
        done, _ = await asyncio.wait([poisoned, quarantined], return_when=asyncio.FIRST_COMPLETED)
        quarantined.cancel()
        if poisoned in done:
            runtime.request_stop()  # the hung record stays in hand: an end, like a kill
            assert await run == EXIT_DRAIN_INCOMPLETE
            ends += 1
            assert ends <= 4, "a record in hand at 3 ends (the first counted at its batch)"
            continue
        poisoned.cancel()
        break
    try:
        await until(lambda: committed(broker, "suspect", ONE.name).get(0) == 200, "the rest")
    finally:
        runtime.request_stop()
        assert await run == EXIT_OK
    print(f"quarantined after {ends} ends")
    assert POISON not in calls.offsets  # the last owner never ran it
    assert dead_source_offsets(broker, ONE.name) == {(0, POISON)}
    by_key = outputs_by_key(broker)
    handled = sorted(n for ns in by_key.values() for n in ns)
    assert set(handled) == set(range(200)) - {POISON}
    assert all(ns == sorted(ns) for ns in by_key.values())
    final = mark(broker)
    assert final is not None and final.metadata == ""  # the clean stop released the mark


async def test_clean_hand_overs_of_an_idle_partition_count_nothing(tmp_path: Path) -> None:
    broker = new_broker(ONE)
    for n in range(5):  # more clean owners than quarantine_after
        calls = Calls()
        runtime = replica(broker, hangs_on_the_poison(calls), n, tmp_path)
        run = asyncio.ensure_future(runtime.run())
        await until(lambda r=runtime: r.ready, "assigned")
        runtime.request_stop()
        assert await run == EXIT_OK
        found = mark(broker)
        assert found is None or found.metadata == ""
    await publish(broker, 10)
    calls = Calls()
    runtime = replica(broker, hangs_on_the_poison(calls), 9, tmp_path)
    run = asyncio.ensure_future(runtime.run())
    try:
        await until(lambda: committed(broker, "suspect", ONE.name).get(0) == 10, "all handled")
    finally:
        runtime.request_stop()
        assert await run == EXIT_OK
    assert calls.offsets == list(range(10))
    assert dead_source_offsets(broker, ONE.name) == set()


@pytest.mark.parametrize("strikes, quarantined", [(2, False), (3, True)])
async def test_a_mark_left_by_others_decides_the_first_record(
    tmp_path: Path, strikes: int, quarantined: bool
) -> None:
    broker = new_broker(ONE)
    await publish(broker, 60)
    tp = TopicPartition(ONE.name, 0)
    broker.group("suspect").commit({tp: 5}, in_flight(strikes))
    calls = Calls()

    async def fine(step: Step, ctx: Context) -> Done:
        assert ctx.record is not None
        calls.offsets.append(ctx.record.offset)
        return Done(key=step.key, n=step.n)

    processor = dataclasses.replace(hangs_on_the_poison(calls), handler=fine)
    runtime = replica(broker, processor, 0, tmp_path)
    run = asyncio.ensure_future(runtime.run())
    try:
        await until(lambda: committed(broker, "suspect", ONE.name).get(0) == 60, "all handled")
    finally:
        runtime.request_stop()
        assert await run == EXIT_OK
    assert (5 not in calls.offsets) is quarantined
    assert dead_source_offsets(broker, ONE.name) == ({(0, 5)} if quarantined else set())
    assert calls.offsets == [n for n in range(5, 60) if not (quarantined and n == 5)]


async def test_off_it_leaves_no_mark(tmp_path: Path) -> None:
    broker = new_broker(ONE)
    await publish(broker, 20)
    calls = Calls()
    processor = dataclasses.replace(hangs_on_the_poison(calls), quarantine_after=None)
    runtime = replica(broker, processor, 0, tmp_path)
    run = asyncio.ensure_future(runtime.run())
    try:
        await until(lambda: committed(broker, "suspect", ONE.name).get(0) == 20, "all handled")
        found = mark(broker)
        assert found is not None and found.metadata == ""
    finally:
        runtime.request_stop()
        assert await run == EXIT_OK


def passes_everything() -> Processor[Step]:
    async def handle(step: Step, ctx: Context) -> Done:
        return Done(key=step.key, n=step.n)

    return Processor("suspect", ONE, handle, outputs=(OUTPUT,), batch_records=50)


async def test_owners_the_broker_stops_count_no_strike_against_the_records_in_hand(
    tmp_path: Path,
) -> None:
    """An output the broker does not acknowledge ends the replica with records in hand;
    that is the broker's doing, so however often it happens nothing is quarantined."""
    broker = new_broker(ONE)
    await publish(broker, 200)
    for n in range(5):  # more such ends than quarantine_after
        broker.fail("produce", times=1, topic=OUTPUT.name)
        runtime = replica(broker, passes_everything(), n, tmp_path)
        assert await asyncio.wait_for(runtime.run(), 20) == EXIT_FAILED
        final = mark(broker)
        assert final is None or final.metadata == "", f"end {n} left {final}"
    runtime = replica(broker, passes_everything(), 5, tmp_path)
    run = asyncio.ensure_future(runtime.run())
    try:
        await until(lambda: committed(broker, "suspect", ONE.name).get(0) == 200, "everything")
    finally:
        runtime.request_stop()
        assert await run == EXIT_OK
    assert dead_source_offsets(broker, ONE.name) == set()
    handled = {n for ns in outputs_by_key(broker).values() for n in ns}
    assert handled == set(range(200))
