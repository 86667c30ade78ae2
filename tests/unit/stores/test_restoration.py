"""Restoring a partition's stores from changelogs that are not simply appended to: aborted
transactions, a log start moved past the local copy, exactly-once counting end to end."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgpack

from pipeline.kafka.memory import MemoryBroker, MemoryClients
from pipeline.kafka.port import ProducerOptions
from pipeline.metrics import Metrics
from pipeline.processor import Processor
from pipeline.runtime.host import StateParts
from pipeline.runtime.restoration import open_state, restore
from pipeline.runtime.worker import EXIT_OK
from pipeline.stores.rocks import UNBOUNDED
from pipeline.stores.store_spec import Store, changelog_topic
from tests.unit.runtime.support import (
    OUTPUT,
    SOURCE,
    Step,
    all_committed,
    new_broker,
    start_replica,
    until,
)
from tests.unit.stores.test_state_runtime import (
    TOTALS,
    changelog_values,
    expected_totals,
    publish,
    running_total,
)

CHANGELOG = changelog_topic("g", "totals")


def parts(broker: MemoryBroker, directory: Path, read_committed: bool) -> StateParts:
    return StateParts(MemoryClients(broker), "g", directory, UNBOUNDED, read_committed)


async def write(broker: MemoryBroker, values: dict[bytes, int], commit: bool | None) -> None:
    """Changelog records on partition 0: in a transaction committed or aborted, or none."""
    options = ProducerOptions(transactional_id="writer" if commit is not None else None)
    producer = MemoryClients(broker).producer(options)
    await producer.start()
    try:
        if commit is not None:
            await producer.begin_transaction()
        batch = producer.create_batch()
        for key, value in values.items():
            batch.append(key, msgpack.packb(value), None, [])
        await (await producer.send_batch(batch, CHANGELOG, 0))
        if commit is True:
            await producer.commit_transaction()
        elif commit is False:
            await producer.abort_transaction()
    finally:
        await producer.stop()


async def restored(broker: MemoryBroker, directory: Path, read_committed: bool) -> dict[str, int]:
    state_parts = parts(broker, directory, read_committed)
    state = open_state(state_parts, (TOTALS,), 0)
    assert state is not None
    try:
        await restore(state, state_parts, Metrics(), asyncio.Event())
        found = {}
        for key in (b"a", b"b", b"c"):
            raw = state.read("totals", key)
            if raw is not None:
                found[key.decode()] = TOTALS.decode(raw)
        return found
    finally:
        state.close()


async def test_an_exactly_once_restore_leaves_aborted_changes_out(tmp_path: Path) -> None:
    broker = MemoryBroker()
    broker.create_topic(CHANGELOG, 1, {"cleanup.policy": "compact"})
    await write(broker, {b"a": 1, b"b": 2}, commit=True)
    await write(broker, {b"a": 99, b"c": 99}, commit=False)
    await write(broker, {b"b": 3}, commit=True)
    assert await restored(broker, tmp_path / "committed", read_committed=True) == {"a": 1, "b": 3}
    # The same log read as an at-least-once restore does: the aborted changes come back.
    loose = await restored(broker, tmp_path / "uncommitted", read_committed=False)
    assert loose == {"a": 99, "b": 3, "c": 99}


async def test_a_copy_past_a_dead_owners_open_transaction_is_kept(tmp_path: Path) -> None:
    """A dead owner's open transaction holds the last stable offset back until it times out;
    its successor's copy, past it with what it committed since, is not ahead of its changelog."""
    broker = MemoryBroker()
    broker.create_topic(CHANGELOG, 1, {"cleanup.policy": "compact"})
    dead = MemoryClients(broker).producer(ProducerOptions(transactional_id="dead"))
    await dead.start()
    await dead.begin_transaction()
    batch = dead.create_batch()
    batch.append(b"a", msgpack.packb(99), None, [])
    await (await dead.send_batch(batch, CHANGELOG, 0))  # and then SIGKILL: never ended
    await write(broker, {b"b": 2}, commit=True)  # the successor's batch
    # The successor's copy, written once its transaction committed.
    state_parts = parts(broker, tmp_path, read_committed=True)
    state = open_state(state_parts, (TOTALS,), 0)
    assert state is not None
    state.local["totals"].write(
        {b"b": msgpack.packb(2)}, broker.partition_log((CHANGELOG, 0)).high_watermark
    )
    state.close()
    assert await restored(broker, tmp_path, read_committed=True) == {"b": 2}


async def test_a_copy_behind_a_moved_log_start_reads_from_the_log_start(tmp_path: Path) -> None:
    broker = MemoryBroker()
    broker.create_topic(CHANGELOG, 1, {"cleanup.policy": "compact"})
    await write(broker, {b"a": 1}, commit=None)
    assert await restored(broker, tmp_path, read_committed=False) == {"a": 1}
    await write(broker, {b"b": 2}, commit=None)
    await write(broker, {b"c": 3}, commit=None)
    # Offsets 1 and 2 are gone before the copy (at 1) is opened again.
    broker.delete_records((CHANGELOG, 0), 3)
    await write(broker, {b"c": 4}, commit=None)
    assert await restored(broker, tmp_path, read_committed=False) == {"a": 1, "c": 4}


async def test_exactly_once_state_counts_each_record_once(tmp_path: Path) -> None:
    processor = Processor(
        "totaller_eos",
        SOURCE,
        running_total,
        outputs=(OUTPUT,),
        stores=(TOTALS,),
        exactly_once=True,
    )
    broker = new_broker()
    steps = [Step(key=f"k{n % 4}", n=n) for n in range(200)]
    await publish(broker, steps)
    runtime, run = await start_replica(broker, processor, "r1", tmp_path)
    try:
        await until(lambda: all_committed(broker, "totaller_eos"), "every step committed")
    finally:
        runtime.request_stop()
        assert await run == EXIT_OK
    assert changelog_values(broker, "totaller_eos") == expected_totals(steps)


def test_a_store_declared_twice_in_two_processors_has_two_changelogs() -> None:
    assert Store("totals").changelog("a") != Store("totals").changelog("b")
