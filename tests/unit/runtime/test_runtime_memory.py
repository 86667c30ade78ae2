"""The worker runtime's promises, one by one, on the in-memory broker: no Kafka, no processes.

Each test runs the code a `pipeline worker` replica runs (pipeline.runtime)
with the broker swapped for pipeline.kafka.memory, and waits on outcomes
(commits, outputs) with deadlines, never on sleeps.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from pipeline.kafka.memory import MemoryClients
from pipeline.kafka.memory.consumer import MemoryConsumer
from pipeline.kafka.port import Consumer, ConsumerOptions, Record, TopicPartition
from pipeline.ops.offset_ranges import PartitionRange
from pipeline.ops.replay import ReplayPlan
from pipeline.processor import Context, PermanentError, Processor
from pipeline.publishing.producer import EventProducer
from pipeline.resilience.breaker import BreakerPolicy, DependencyError
from pipeline.resilience.flood_guard import FloodGuardPolicy
from pipeline.resilience.retry import RetryPolicy
from pipeline.runtime.worker import EXIT_FAILED, EXIT_OK
from pipeline.testing import TestPipeline
from tests.unit.runtime.support import (
    OUTPUT,
    SOURCE,
    Done,
    Step,
    all_committed,
    committed,
    dead_source_offsets,
    ends,
    new_broker,
    outputs_by_key,
    settings,
    start_replica,
    until,
    values,
)

FAST = RetryPolicy(attempts=3, base_delay_s=0.001, max_delay_s=0.005)


def steps(count: int, keys: int, mode: str = "") -> list[Step]:
    return [Step(key=f"k{n % keys}", n=n, mode=mode) for n in range(count)]


async def echo(step: Step, ctx: Context) -> Done:
    if step.mode == "permanent":
        raise PermanentError(f"step {step.n} can never succeed")
    return Done(key=step.key, n=step.n)


ECHO = Processor("echo", SOURCE, echo, outputs=(OUTPUT,), retry=FAST)


async def test_a_blocked_partition_holds_back_only_itself(tmp_path: Path) -> None:
    release = asyncio.Event()

    async def blocks_on_stuck(step: Step, ctx: Context) -> Done:
        if step.key == "stuck":
            await release.wait()
        return Done(key=step.key, n=step.n)

    processor = Processor("bulkhead", SOURCE, blocks_on_stuck, outputs=(OUTPUT,))
    broker = new_broker()
    async with EventProducer(settings(), clients=MemoryClients(broker)) as producer:
        stuck = await producer.publish(SOURCE, Step(key="stuck", n=0))
        await producer.publish_many(SOURCE, steps(300, keys=30))
    runtime, run = await start_replica(broker, processor, "r1", tmp_path)
    try:
        others = [p for p in ends(broker) if p != stuck.partition]
        await until(
            lambda: all(committed(broker, "bulkhead").get(p, 0) >= ends(broker)[p] for p in others),
            "the other partitions to be committed to their end",
        )
        # The stuck record is the first of its partition: nothing of it is committed.
        assert committed(broker, "bulkhead").get(stuck.partition, 0) == 0
        release.set()
        await until(lambda: all_committed(broker, "bulkhead"), "everything committed")
    finally:
        release.set()
        runtime.request_stop()
        assert await run == EXIT_OK


async def test_lanes_run_keys_at_once_and_keep_each_keys_order() -> None:
    running = 0
    most = 0

    async def jittery(step: Step, ctx: Context) -> Done:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.0005 * (step.n % 3))
        running -= 1
        return Done(key=step.key, n=step.n)

    processor = Processor("lanes", SOURCE, jittery, outputs=(OUTPUT,), lanes=4)
    async with TestPipeline(processor) as pipeline:
        await pipeline.publish(SOURCE, steps(600, keys=40))
        await pipeline.processed()
        by_key = outputs_by_key(pipeline.broker)
    assert most > 1, "lanes never ran two handlers at once"
    assert sum(len(ns) for ns in by_key.values()) == 600
    for key, ns in by_key.items():
        assert ns == sorted(ns), f"key {key} out of order: {ns}"


class RepeatingConsumer(MemoryConsumer):
    """Hands every fetch's records twice in one list, as the confluent adapter's
    fetched-ahead buffer did after a re-assignment moved a position back."""

    async def fetch(
        self, partitions: Collection[TopicPartition], timeout_s: float, max_records: int
    ) -> Mapping[TopicPartition, Sequence[Record]]:
        found = await super().fetch(partitions, timeout_s, max_records)
        return {tp: [*records, *records[len(records) // 2 :]] for tp, records in found.items()}


class RepeatingClients(MemoryClients):
    def consumer(self, options: ConsumerOptions) -> Consumer:
        return RepeatingConsumer(self.broker, options)


async def test_records_a_client_hands_over_twice_in_one_fetch_are_handled_once(
    tmp_path: Path,
) -> None:
    broker = new_broker()
    async with EventProducer(settings(), clients=MemoryClients(broker)) as producer:
        await producer.publish_many(SOURCE, steps(500, keys=25))
    runtime, run = await start_replica(
        broker, ECHO, "r1", tmp_path, clients=RepeatingClients(broker)
    )
    try:
        await until(lambda: all_committed(broker, "echo"), "everything committed")
    finally:
        runtime.request_stop()
        assert await run == EXIT_OK
    by_key = outputs_by_key(broker)
    assert sorted(n for ns in by_key.values() for n in ns) == list(range(500))


async def test_the_commit_never_passes_a_record_still_being_handled(tmp_path: Path) -> None:
    release = asyncio.Event()
    handled: list[int] = []

    async def slow_fifth(step: Step, ctx: Context) -> Done:
        if step.n == 5:
            await release.wait()
        handled.append(step.n)
        return Done(key=step.key, n=step.n)

    two_partitions = dataclasses.replace(SOURCE, partitions=2)
    processor = Processor(
        "low-water", two_partitions, slow_fifth, outputs=(OUTPUT,), lanes=4, batch_records=10
    )
    broker = new_broker(two_partitions)
    group = broker.group("low-water")
    commits: dict[int, list[int]] = {0: [], 1: []}
    commit = group.commit

    def noted(offsets: dict[TopicPartition, int], metadata: str) -> None:
        for tp, offset in offsets.items():
            commits[tp.partition].append(offset)
        commit(offsets, metadata)

    group.commit = noted  # type: ignore[method-assign]
    async with EventProducer(settings(), clients=MemoryClients(broker)) as producer:
        fifth = (await producer.publish_many(two_partitions, steps(400, keys=20)))[5]
    held, other = fifth.partition, 1 - fifth.partition
    runtime, run = await start_replica(broker, processor, "r1", tmp_path)
    try:
        # Records after the fifth, in its batch but other lanes, finish while it is
        # held; the other partition is committed to its end meanwhile, commit
        # after commit: none of the held partition's may pass the fifth.
        await until(lambda: any(n > 5 for n in handled), "a record after the fifth handled")
        await until(
            lambda: committed(broker, "low-water").get(other) == ends(broker)[other],
            "the other partition committed to its end",
        )
        assert max(commits[held], default=0) <= fifth.offset
        release.set()
        await until(lambda: all_committed(broker, "low-water"), "everything committed")
    finally:
        release.set()
        runtime.request_stop()
        assert await run == EXIT_OK
    assert commits[held] == sorted(commits[held])


async def test_failures_are_retried_then_dead_lettered_with_their_attempts() -> None:
    tries: dict[int, int] = {}

    async def flaky(step: Step, ctx: Context) -> Done:
        tries[step.n] = tries.get(step.n, 0) + 1
        if step.mode == "flaky" and tries[step.n] == 1:
            raise ConnectionResetError("first try fails")
        if step.mode == "broken":
            raise ValueError(f"step {step.n} is broken")
        return await echo(step, ctx)

    processor = Processor("retries", SOURCE, flaky, outputs=(OUTPUT,), retry=FAST)
    async with TestPipeline(processor, keep_retry=True) as pipeline:
        await pipeline.publish(
            SOURCE,
            [
                Step(key="a", n=0, mode="flaky"),
                Step(key="a", n=1, mode="broken"),
                Step(key="a", n=2, mode="permanent"),
                Step(key="a", n=3),
            ],
        )
        await pipeline.processed()
        outputs = pipeline.outputs(OUTPUT)
        dead = {letter.source_offset: letter for letter in pipeline.dead_letters()}
    assert [o.n for o in outputs] == [0, 3]
    assert tries[0] == 2
    assert dead[1].error_type == "ValueError" and dead[1].attempts == FAST.attempts
    assert dead[2].error_type == "PermanentError" and dead[2].attempts == 1
    assert "step 1 is broken" in dead[1].error_message


async def test_a_failing_dependency_makes_the_partition_wait_and_dead_letters_nothing() -> None:
    down_for = 25

    async def lookup(n: int) -> int:
        nonlocal down_for
        if down_for > 0:
            down_for -= 1
            raise ConnectionRefusedError("the service is down")
        return n

    async def through_dependency(step: Step, ctx: Context) -> Done:
        n = await ctx.call("service", lookup, step.n)
        return Done(key=step.key, n=n)

    processor = Processor(
        "dependency",
        SOURCE,
        through_dependency,
        outputs=(OUTPUT,),
        dependencies={"service": BreakerPolicy(minimum_calls=5, open_duration_s=0.05)},
    )
    async with TestPipeline(processor) as pipeline:
        await pipeline.publish(SOURCE, steps(30, keys=3))
        await pipeline.processed(timeout_s=30)
        outputs = pipeline.outputs(OUTPUT)
        waits = pipeline.metrics.total("dependency_waits")
        failures = pipeline.metrics.total("dependency_failures")
    assert pipeline.dead_letters() == []
    assert sorted(o.n for o in outputs) == list(range(30))
    assert down_for == 0 and waits + failures > 0
    assert issubclass(DependencyError, Exception)


async def test_the_flood_guard_pauses_instead_of_emptying_the_topic_into_the_dlq() -> None:
    quick_pause = dataclasses.replace(ECHO, flood_guard=FloodGuardPolicy(pause_s=0.05))
    async with TestPipeline(quick_pause) as pipeline:
        await pipeline.publish(SOURCE, steps(400, keys=1, mode="permanent"))
        await pipeline.processed(timeout_s=30)
        pauses = pipeline.metrics.total("flood_guard_pauses")
        dead = pipeline.dead_letters()
    assert pauses >= 1
    assert len(dead) == 400  # the pause delays them; none is lost


async def test_a_replica_joining_takes_over_after_the_first_drained(tmp_path: Path) -> None:
    async def steady(step: Step, ctx: Context) -> Done:
        await asyncio.sleep(0.0005)
        return Done(key=step.key, n=step.n)

    processor = Processor("handover", SOURCE, steady, outputs=(OUTPUT,), lanes=2)
    broker = new_broker()
    async with EventProducer(settings(), clients=MemoryClients(broker)) as producer:
        await producer.publish_many(SOURCE, steps(1500, keys=60))
    first, first_run = await start_replica(broker, processor, "r1", tmp_path)
    await until(lambda: len(values(broker, OUTPUT.name)) > 200, "the first replica under way")
    second, second_run = await start_replica(broker, processor, "r2", tmp_path)
    try:
        await until(lambda: all_committed(broker, "handover"), "everything committed", 30)
    finally:
        first.request_stop()
        second.request_stop()
        assert await first_run == EXIT_OK and await second_run == EXIT_OK
    assert broker.group("handover").rebalances >= 2
    produced = [fields["n"] for _, _, fields in values(broker, OUTPUT.name)]
    # Drain before revoke: what the first finished was committed before the
    # second took over, so nothing is handled twice.
    assert sorted(produced) == list(range(1500))


async def test_a_replay_handles_exactly_its_range_and_commits_its_end(tmp_path: Path) -> None:
    broker = new_broker()
    async with EventProducer(settings(), clients=MemoryClients(broker)) as producer:
        await producer.publish_many(SOURCE, steps(300, keys=30))
    lengths = ends(broker)
    ranges = {p: PartitionRange(p, 10, end - 10) for p, end in lengths.items()}
    plan = ReplayPlan(name="backfill", topic=SOURCE.name, ranges=ranges)
    runtime, run = await start_replica(broker, ECHO, "replay", tmp_path, replay=plan)
    assert await asyncio.wait_for(run, 10) == EXIT_OK  # it stops by itself at the end
    assert runtime.replay is not None and runtime.replay.finished()
    assert committed(broker, plan.group) == {p: r.end for p, r in ranges.items()}
    wanted = {(p, o) for p, r in ranges.items() for o in range(r.start, r.end)}
    source = {(part, off): f["n"] for part, off, f in values(broker, SOURCE.name)}
    produced = sorted(int(str(f["n"])) for _, _, f in values(broker, OUTPUT.name))
    assert produced == sorted(int(str(source[where])) for where in wanted)
    assert broker.group(plan.group).commits  # its own group; the live group is untouched
    assert committed(broker, ECHO.group_id) == {}


async def test_exactly_once_outputs_survive_a_failed_transaction_and_a_restart(
    tmp_path: Path,
) -> None:
    processor = Processor("eos", SOURCE, echo, outputs=(OUTPUT,), exactly_once=True)
    broker = new_broker()
    async with EventProducer(settings(), clients=MemoryClients(broker)) as producer:
        await producer.publish_many(SOURCE, steps(500, keys=25))
    broker.fail("commit_transaction", times=1, retriable=False)
    _, first_run = await start_replica(broker, processor, "r1", tmp_path)
    assert await asyncio.wait_for(first_run, 10) == EXIT_FAILED
    second, second_run = await start_replica(broker, processor, "r1", tmp_path)
    try:
        await until(lambda: all_committed(broker, "eos"), "everything committed")
    finally:
        second.request_stop()
        assert await second_run == EXIT_OK
    # A read_committed reader sees every output exactly once.
    committed_outputs = [
        entry.record
        for log in broker.topic(OUTPUT.name).partitions
        for entry in log.entries
        if entry.record is not None
        and (
            entry.transaction is None or broker.transactions[entry.transaction].state == "committed"
        )
    ]
    assert len(committed_outputs) == 500
    assert dead_source_offsets(broker, SOURCE.name) == set()
