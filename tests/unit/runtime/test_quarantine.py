"""A record in hand at K ends of its owner is quarantined by the next one, without running it.

On the in-memory broker: owners that end with a hung record in hand (a
stop whose drain cannot finish is such an end, as a kill or a drop from
the group is), clean hand-overs that must count nothing, and marks left
in the group's commit metadata as another replica would leave them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st

from pipeline.kafka.memory import MemoryBroker, MemoryClients
from pipeline.kafka.port import Committed, TopicPartition
from pipeline.processor import Context, Processor
from pipeline.publishing.producer import EventProducer
from pipeline.runtime.quarantine import LEGACY_MARK, MARK, Hands, read_hands
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


def test_the_mark_reads_back_what_was_written_and_nothing_else() -> None:
    for hands in (Hands(10, 710), Hands(10, 710, 2, 37), Hands(0, 0, 1, 0)):
        assert read_hands(Committed(hands.first, hands.encode())) == hands
    assert read_hands(Committed(711, Hands(10, 710).encode())) is None  # stale: all committed
    assert read_hands(Committed(10, "written by another tool")) is None
    assert read_hands(Committed(10, MARK + "x-y")) is None
    assert read_hands(Committed(10, MARK + "10-20;strikes=x@11")) is None
    assert read_hands(None) is None
    # An earlier version's mark: N strikes on the committed offset, 50 records in reach.
    assert read_hands(Committed(10, LEGACY_MARK + "2")) == Hands(10, 59, 2, 10)


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


async def replica(
    broker: MemoryBroker,
    processor: Processor[Step],
    n: int,
    tmp: Path,
    commit_interval_s: float = 0.02,
) -> Runtime:
    options = WorkerOptions(
        replica_id=f"r{n}",
        handle_signals=False,
        commit_interval_s=commit_interval_s,
        cache_dir=tmp,
        drain_deadline_s=0.2,
    )
    runtime = await Runtime.open(settings(), processor, options, clients=MemoryClients(broker))
    assert runtime is not None
    return runtime


async def publish(broker: MemoryBroker, count: int) -> None:
    async with EventProducer(settings(), clients=MemoryClients(broker)) as producer:
        await producer.publish_many(ONE, [Step(key=f"k{n % 4}", n=n) for n in range(count)])


def mark(broker: MemoryBroker) -> Committed | None:
    return broker.group("suspect").commits.get(TopicPartition(ONE.name, 0))


async def run_until_committed(
    broker: MemoryBroker, processor: Processor[Step], n: int, tmp: Path, count: int
) -> None:
    """Replica `n` until the group has committed `count` records, then a clean stop."""
    runtime = await replica(broker, processor, n, tmp)
    run = asyncio.ensure_future(runtime.run())
    try:
        await until(lambda: committed(broker, "suspect", ONE.name).get(0) == count, "all handled")
    finally:
        runtime.request_stop()
        assert await run == EXIT_OK


async def test_a_record_that_hangs_every_owner_is_quarantined_and_the_rest_goes_on(
    tmp_path: Path,
) -> None:
    broker = new_broker(ONE)
    await publish(broker, 200)
    ends = 0
    while True:
        calls = Calls()
        runtime = await replica(broker, hangs_on_the_poison(calls), ends, tmp_path)
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
        runtime = await replica(broker, hangs_on_the_poison(calls), n, tmp_path)
        run = asyncio.ensure_future(runtime.run())
        await until(lambda r=runtime: r.ready, "assigned")
        runtime.request_stop()
        assert await run == EXIT_OK
        found = mark(broker)
        assert found is None or found.metadata == ""
    await publish(broker, 10)
    calls = Calls()
    await run_until_committed(broker, hangs_on_the_poison(calls), 9, tmp_path, 10)
    assert calls.offsets == list(range(10))
    assert dead_source_offsets(broker, ONE.name) == set()


@pytest.mark.parametrize("strikes, quarantined", [(2, False), (3, True)])
async def test_a_mark_left_by_others_decides_the_first_record(
    tmp_path: Path, strikes: int, quarantined: bool
) -> None:
    broker = new_broker(ONE)
    await publish(broker, 60)
    tp = TopicPartition(ONE.name, 0)
    broker.group("suspect").commit({tp: 5}, Hands(5, 5, strikes, 5).encode())
    calls = Calls()

    async def fine(step: Step, ctx: Context) -> Done:
        assert ctx.record is not None
        calls.offsets.append(ctx.record.offset)
        return Done(key=step.key, n=step.n)

    processor = dataclasses.replace(hangs_on_the_poison(calls), handler=fine)
    await run_until_committed(broker, processor, 0, tmp_path, 60)
    assert (5 not in calls.offsets) is quarantined
    assert dead_source_offsets(broker, ONE.name) == ({(0, 5)} if quarantined else set())
    assert calls.offsets == [n for n in range(5, 60) if not (quarantined and n == 5)]


async def test_off_it_leaves_no_mark(tmp_path: Path) -> None:
    broker = new_broker(ONE)
    await publish(broker, 20)
    calls = Calls()
    processor = dataclasses.replace(hangs_on_the_poison(calls), quarantine_after=None)
    runtime = await replica(broker, processor, 0, tmp_path)
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
        runtime = await replica(broker, passes_everything(), n, tmp_path)
        assert await asyncio.wait_for(runtime.run(), 20) == EXIT_FAILED
        final = mark(broker)
        assert final is None or final.metadata == "", f"end {n} left {final}"
    await run_until_committed(broker, passes_everything(), 5, tmp_path, 200)
    assert dead_source_offsets(broker, ONE.name) == set()
    handled = {n for ns in outputs_by_key(broker).values() for n in ns}
    assert handled == set(range(200))


def killed_at_the_poison(calls: Calls, batch_records: int, lanes: int) -> Processor[Step]:
    return dataclasses.replace(hangs_on_the_poison(calls), batch_records=batch_records, lanes=lanes)


def handled_all(broker: MemoryBroker, expected: set[int]) -> bool:
    handled = {n for ns in outputs_by_key(broker).values() for n in ns}
    return handled >= expected and bool(dead_source_offsets(broker, ONE.name))


async def deaths_until_quarantined(
    broker: MemoryBroker, expected: set[int], batch_records: int, lanes: int, folder: Path
) -> int:
    """Owners one after another until the poison is quarantined; each one the poison stops
    is killed: the group's commits go back to what they were when it stopped (no drain, no
    final commit). Nothing but the marks moves the commit meanwhile."""
    deaths = 0
    while True:
        calls = Calls()
        processor = killed_at_the_poison(calls, batch_records, lanes)
        runtime = await replica(broker, processor, deaths, folder, commit_interval_s=3600)
        run = asyncio.ensure_future(runtime.run())
        poisoned = asyncio.ensure_future(calls.in_poison.wait())
        all_done = asyncio.ensure_future(
            until(lambda: handled_all(broker, expected), "everything handled", 10)
        )
        finished, _ = await asyncio.wait(
            [poisoned, all_done, run], return_when=asyncio.FIRST_COMPLETED
        )
        if poisoned not in finished:
            poisoned.cancel()
            await all_done
            runtime.request_stop()
            assert await run == EXIT_OK
            return deaths
        at_death = dict(broker.group("suspect").commits)
        all_done.cancel()
        runtime.request_stop()
        await run
        broker.group("suspect").commits.clear()
        broker.group("suspect").commits.update(at_death)
        deaths += 1
        if deaths > 4:
            return deaths


@examples(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    count=st.integers(min_value=1, max_value=700),
    poison_at=st.floats(min_value=0, max_value=1, exclude_max=True),
    batch_records=st.integers(min_value=1, max_value=400),
    lanes=st.sampled_from([1, 4]),
    committed_before=st.floats(min_value=0, max_value=1),
)
async def test_a_poison_anywhere_past_the_commit_costs_at_most_k_plus_one_deaths(
    count: int, poison_at: float, batch_records: int, lanes: int, committed_before: float
) -> None:
    global POISON
    broker = new_broker(ONE)
    await publish(broker, count)
    poison = int(poison_at * count)
    start = int(committed_before * poison)  # handled and committed by an earlier owner
    if start:
        broker.group("suspect").commit({TopicPartition(ONE.name, 0): start}, "")
    saved, POISON = POISON, poison
    expected = set(range(start, count)) - {poison}
    try:
        with tempfile.TemporaryDirectory() as folder:
            deaths = await deaths_until_quarantined(
                broker, expected, batch_records, lanes, Path(folder)
            )
    finally:
        POISON = saved
    assert deaths <= 4, f"poison {poison} of {count}, batches of {batch_records}: {deaths} deaths"
    assert committed(broker, "suspect", ONE.name).get(0) == count
    assert dead_source_offsets(broker, ONE.name) == {(0, poison)}
    by_key = outputs_by_key(broker)
    assert {n for ns in by_key.values() for n in ns} == expected
    for ns in by_key.values():
        firsts = list(dict.fromkeys(ns))
        assert firsts == sorted(firsts), "per-key order of first outputs"


@pytest.mark.parametrize(("at", "kept"), [(40, True), (5, False)])
async def test_a_clean_hand_over_keeps_the_strikes_of_a_record_not_yet_reached(
    at: int, kept: bool
) -> None:
    """A rebalance between two deaths must not reset the poison's count; once the careful
    pass is past that record, a clean hand-over leaves no mark."""
    from pipeline.kafka.port import ConsumerOptions
    from pipeline.metrics import Metrics
    from pipeline.runtime.commits import Committer

    broker = new_broker(ONE)
    consumer = MemoryClients(broker).consumer(ConsumerOptions(group_id="suspect"))
    await consumer.start()
    tp = TopicPartition(ONE.name, 0)
    consumer.assign([tp])
    try:
        committer = Committer(consumer, 3600, Metrics(), marks=True)
        offsets = committer.open(tp)
        offsets.hands = Hands(0, 100, 2, at)  # inherited: 2 owners ended with `at` in hand
        offsets.finished(offsets.started(0, 9, 10), committed_with_outputs=False)
        await committer.commit([tp], release=True)
    finally:
        await consumer.stop()
    expected = Hands(0, 100, 2, at).encode() if kept else ""
    assert mark(broker) == Committed(10, expected)
    assert (offsets.hands is not None) is kept


async def test_a_refused_strike_is_committed_before_the_record_runs(tmp_path: Path) -> None:
    """A strike's commit refused (a rebalance under way) is retried; the record waits for it.

    Run after a refusal, a record that kills its owner would do so without its
    strike, and cost one death more than quarantine_after + 1.
    """
    broker = new_broker(ONE)
    await publish(broker, 60)
    tp = TopicPartition(ONE.name, 0)
    broker.group("suspect").commit({tp: 5}, Hands(5, 5, 2, 5).encode())
    calls = Calls()

    async def hangs_at_five(step: Step, ctx: Context) -> Done:
        assert ctx.record is not None
        calls.offsets.append(ctx.record.offset)
        if ctx.record.offset == 5:
            assert mark(broker) == Committed(5, Hands(5, 5, 3, 5).encode()), "ran unmarked"
            calls.in_poison.set()
            await asyncio.Event().wait()
        return Done(key=step.key, n=step.n)

    broker.fail("commit", times=2)  # the strike's first two tries
    processor = dataclasses.replace(hangs_on_the_poison(calls), handler=hangs_at_five)
    runtime = await replica(broker, processor, 0, tmp_path, commit_interval_s=3600)
    run = asyncio.ensure_future(runtime.run())
    await asyncio.wait_for(calls.in_poison.wait(), 10)
    runtime.request_stop()
    assert await run == EXIT_DRAIN_INCOMPLETE
    assert mark(broker) == Committed(5, Hands(5, 5, 3, 5).encode())
    assert calls.offsets == [5]


async def test_a_batch_waiting_for_its_refused_claim_is_not_skipped_as_a_gap(
    tmp_path: Path,
) -> None:
    """While a claim is retried its batch is out of the queue and not started; the fetch loop
    must not count the partition idle and skip its offsets as gaps (the batch would then not
    follow the committable offset, and the worker crash), and the in-flight bound must still
    count the batch as held (it did not: a process test held 2,045 records under a bound of
    2,000)."""
    broker = new_broker(ONE)
    await publish(broker, 100)
    calls = Calls()

    async def fine(step: Step, ctx: Context) -> Done:
        assert ctx.record is not None
        calls.offsets.append(ctx.record.offset)
        return Done(key=step.key, n=step.n)

    broker.fail("commit", times=8)  # the first claim refused for longer than a gap check
    processor = dataclasses.replace(hangs_on_the_poison(calls), handler=fine, batch_records=500)
    runtime = await replica(broker, processor, 0, tmp_path, commit_interval_s=3600)
    run = asyncio.ensure_future(runtime.run())
    held_while_refused: list[int] = []

    def handled_all() -> bool:
        if not calls.offsets:  # the claim still refused: the whole batch is in hand
            held_while_refused.append(sum(runtime.partitions.held().values()))
        return len(calls.offsets) == 100 or run.done()

    try:
        await until(handled_all, "all handled")
    finally:
        runtime.request_stop()
        assert await run == EXIT_OK
    assert calls.offsets == list(range(100))
    assert max(held_while_refused) == 100


async def test_an_owner_the_broker_stops_mid_strike_takes_its_strike_back(tmp_path: Path) -> None:
    """The careful owner commits a strike on a record, runs it, and the broker refuses an
    output: the record did nothing wrong, so the mark it leaves holds no more strikes than
    it found (a property test once saw a normal record quarantined after such ends)."""
    broker = new_broker(ONE)
    await publish(broker, 60)
    tp = TopicPartition(ONE.name, 0)
    # Records 5..40 one at a time, 8 struck twice; the outputs of the first are refused once
    # the worker awaits them, which is when 8's strike is committed and 8 run.
    broker.group("suspect").commit({tp: 5}, Hands(5, 40, 2, 8).encode())
    for n in range(3):  # as many such ends as it takes to quarantine, were they counted
        broker.fail("produce", times=1, topic=OUTPUT.name)
        runtime = await replica(broker, passes_everything(), n, tmp_path)
        assert await asyncio.wait_for(runtime.run(), 20) == EXIT_FAILED
        left = read_hands(mark(broker))
        assert left is None or all(left.strikes_on(o) <= (2 if o == 8 else 0) for o in range(60))
    await run_until_committed(broker, passes_everything(), 9, tmp_path, 60)
    assert dead_source_offsets(broker, ONE.name) == set()
