"""A processor's own stores on the in-memory broker: staged per record, kept in a changelog,
restored by whichever replica takes the partition next."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import msgpack
import pytest
from pydantic import BaseModel

from pipeline.errors import ConfigError
from pipeline.kafka.memory import MemoryBroker, MemoryClients
from pipeline.metric_names import STATE_RESTORED
from pipeline.ops.offset_ranges import PartitionRange
from pipeline.ops.replay import ReplayPlan
from pipeline.processor import Context, PermanentError, Processor
from pipeline.publishing.producer import EventProducer
from pipeline.resilience.retry import RetryPolicy
from pipeline.runtime.worker import EXIT_FAILED, EXIT_OK
from pipeline.stores.store_spec import Store, StoreValueError, changelog_topic
from pipeline.stores.windows import Count, Window
from tests.unit.runtime.support import (
    OUTPUT,
    SOURCE,
    Done,
    Step,
    all_committed,
    new_broker,
    settings,
    start_replica,
    until,
    values,
)

FAST = RetryPolicy(attempts=3, base_delay_s=0.001, max_delay_s=0.005)
TOTALS: Store[int] = Store("totals")


async def running_total(step: Step, ctx: Context) -> Done:
    total = ctx.store(TOTALS).increment(step.key, step.n)
    if step.mode == "permanent":
        raise PermanentError("counted, then refused: the count must not stay")
    if step.mode == "flaky" and ctx.attempt == 1:
        raise RuntimeError("counted, then failed once: the retry must count it once")
    return Done(key=step.key, n=total)


TOTALLER = Processor(
    "totaller", SOURCE, running_total, outputs=(OUTPUT,), retry=FAST, stores=(TOTALS,)
)


def changelog_values(broker: MemoryBroker, group: str = "totaller") -> dict[str, int]:
    """The last value per key in the changelog: what compaction would keep."""
    last: dict[str, int] = {}
    for log in broker.topic(changelog_topic(group, "totals")).partitions:
        for entry in log.entries:
            record = entry.record
            if record is not None and record.key is not None and record.value is not None:
                last[record.key.decode()] = msgpack.unpackb(record.value)
    return last


async def publish(broker: MemoryBroker, steps: list[Step]) -> None:
    async with EventProducer(settings(), clients=MemoryClients(broker)) as producer:
        await producer.publish_many(SOURCE, steps)


def expected_totals(steps: list[Step]) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for step in steps:
        if step.mode != "permanent":
            totals[step.key] += step.n
    return dict(totals)


async def run_until_committed(broker: MemoryBroker, store_root: Path, replica: str) -> int:
    runtime, run = await start_replica(broker, TOTALLER, replica, store_root)
    try:
        await until(lambda: all_committed(broker, "totaller"), "every step committed")
    finally:
        runtime.request_stop()
        assert await run == EXIT_OK
    return int(runtime.metrics.total(STATE_RESTORED))


async def test_a_running_total_per_key_is_kept_and_changelogged(tmp_path: Path) -> None:
    broker = new_broker()
    steps = [Step(key=f"k{n % 7}", n=n) for n in range(300)]
    await publish(broker, steps)
    await run_until_committed(broker, tmp_path, "r1")
    expected = expected_totals(steps)
    assert changelog_values(broker) == expected
    last_output: dict[str, int] = {}
    for _, _, fields in values(broker, OUTPUT.name):
        last_output[str(fields["key"])] = int(str(fields["n"]))
    assert last_output == expected
    source_partition = _key_partitions(broker)
    for log in broker.topic(changelog_topic("totaller", "totals")).partitions:
        for entry in log.entries:
            record = entry.record
            assert record is not None and record.key is not None
            assert source_partition[record.key.decode()] == log.partition, (
                "state left its partition"
            )


def _key_partitions(broker: MemoryBroker) -> dict[str, int]:
    return {str(fields["key"]): partition for partition, _, fields in values(broker, SOURCE.name)}


async def test_a_failed_attempt_and_a_dead_letter_leave_no_change_behind(tmp_path: Path) -> None:
    broker = new_broker()
    steps = [Step(key="a", n=1), Step(key="a", n=10, mode="flaky"), Step(key="a", n=100)]
    steps += [Step(key="a", n=1000, mode="permanent"), Step(key="a", n=10000)]
    await publish(broker, steps)
    await run_until_committed(broker, tmp_path, "r1")
    assert changelog_values(broker) == {"a": 10111}


async def test_a_new_replica_restores_from_the_changelog_and_goes_on(tmp_path: Path) -> None:
    broker = new_broker()
    first = [Step(key=f"k{n % 5}", n=n) for n in range(100)]
    await publish(broker, first)
    await run_until_committed(broker, tmp_path / "disk-a", "r1")
    later = [Step(key=f"k{n % 5}", n=n) for n in range(100, 150)]
    await publish(broker, later)
    restored = await run_until_committed(broker, tmp_path / "disk-b", "r2")
    assert restored > 0, "a new disk must read the changelog"
    assert changelog_values(broker) == expected_totals(first + later)


async def test_a_restart_on_the_same_disk_reads_only_the_tail(tmp_path: Path) -> None:
    broker = new_broker()
    first = [Step(key=f"k{n % 5}", n=n) for n in range(100)]
    await publish(broker, first)
    await run_until_committed(broker, tmp_path, "r1")
    later = [Step(key=f"k{n % 5}", n=n) for n in range(100, 130)]
    await publish(broker, later)
    restored = await run_until_committed(broker, tmp_path, "r1")
    assert restored == 0, "the local copy was up to date: nothing to read back"
    assert changelog_values(broker) == expected_totals(first + later)


async def test_a_copy_ahead_of_a_remade_changelog_is_wiped_and_rebuilt(tmp_path: Path) -> None:
    broker = new_broker()
    first = [Step(key="x", n=n) for n in range(50)]
    await publish(broker, first)
    await run_until_committed(broker, tmp_path, "r1")
    # The changelog is deleted and made again: the local copy claims offsets it no longer has.
    topic = changelog_topic("totaller", "totals")
    partitions = len(broker.topic(topic).partitions)
    del broker.topics[topic]
    broker.create_topic(topic, partitions, {"cleanup.policy": "compact"})
    await publish(broker, [Step(key="x", n=1000)])
    await run_until_committed(broker, tmp_path, "r1")
    assert changelog_values(broker) == {"x": 1000}, "state from a deleted changelog came back"


class Basket(BaseModel):
    items: list[str]
    total: Decimal


BASKETS: Store[Basket] = Store("baskets", value=Basket)
MONEY: Store[Decimal] = Store("money")


async def test_typed_and_decimal_values_round_trip(tmp_path: Path) -> None:
    seen: list[tuple[Basket | None, Decimal]] = []

    async def baskets(step: Step, ctx: Context) -> None:
        store = ctx.store(BASKETS)
        basket = store.get(step.key) or Basket(items=[], total=Decimal("0"))
        basket.items.append(str(step.n))
        basket.total += Decimal("0.10")
        store.set(step.key, basket)
        money = ctx.store(MONEY).increment(step.key, Decimal("0.10"))
        seen.append((store.get(step.key), money))

    processor = Processor("baskets", SOURCE, baskets, retry=FAST, stores=(BASKETS, MONEY))
    broker = new_broker()
    await publish(broker, [Step(key="b", n=n) for n in range(3)])
    runtime, run = await start_replica(broker, processor, "r1", tmp_path)
    try:
        await until(lambda: all_committed(broker, "baskets"), "every step committed")
    finally:
        runtime.request_stop()
        assert await run == EXIT_OK
    last_basket, last_money = seen[-1]
    assert last_basket == Basket(items=["0", "1", "2"], total=Decimal("0.30"))
    assert last_money == Decimal("0.30") and isinstance(last_money, Decimal)


async def test_a_misspelt_store_stops_the_worker_instead_of_dead_lettering(
    tmp_path: Path,
) -> None:
    async def misspelt(step: Step, ctx: Context) -> None:
        ctx.store("total").increment(step.key, 1)

    processor = Processor("misspelt", SOURCE, misspelt, retry=FAST, stores=(TOTALS,))
    broker = new_broker()
    await publish(broker, [Step(key="a", n=1)])
    runtime, run = await start_replica(broker, processor, "r1", tmp_path)
    assert await asyncio.wait_for(run, 10) == EXIT_FAILED
    assert runtime.failure is not None and "no store 'total'" in runtime.failure
    assert "'totals'" in runtime.failure
    assert not values(broker, SOURCE.dlq_name)


def test_declarations_that_would_lose_updates_are_refused() -> None:
    with pytest.raises(ConfigError, match="lanes=4"):
        Processor("p", SOURCE, running_total, lanes=4, stores=(TOTALS,))
    with pytest.raises(ConfigError, match="run_in='thread'"):
        Processor("p", SOURCE, lambda step: None, run_in="thread", stores=(TOTALS,))
    with pytest.raises(ConfigError, match="share a name"):
        Processor("p", SOURCE, running_total, stores=(TOTALS, Store("totals")))
    with pytest.raises(ConfigError, match="letters, digits"):
        Store("my store")
    with pytest.raises(ConfigError, match="pydantic model"):
        Store("bad", value=dict)


def test_values_a_store_cannot_keep_are_named() -> None:
    with pytest.raises(StoreValueError, match="cannot keep a object"):
        TOTALS.encode(object())  # type: ignore[arg-type]
    with pytest.raises(StoreValueError, match="keeps Basket values"):
        BASKETS.encode({"items": []})  # type: ignore[arg-type]
    assert MONEY.decode(MONEY.encode(Decimal("12.345"))) == Decimal("12.345")


PER_SECOND = Window.tumbling("per_second", 1.0, Count(), grace_s=0.5)


async def count_per_second(step: Step, ctx: Context) -> list[Done]:
    """Step.n is the event time in ms; each closed second becomes one output."""
    closed = ctx.window(PER_SECOND).add(step.key, 1, at=step.n)
    return [Done(key=f"{r.key}@{r.start_ms}", n=r.value) for r in closed]


WINDOWED = Processor(
    "windowed", SOURCE, count_per_second, outputs=(OUTPUT,), retry=FAST, windows=(PER_SECOND,)
)


def windows_out(broker: MemoryBroker) -> dict[str, int]:
    found: dict[str, int] = {}
    for _, _, fields in values(broker, OUTPUT.name):
        name = str(fields["key"])
        assert name not in found, f"window {name} emitted twice"
        found[name] = int(str(fields["n"]))
    return found


def reference_counts(steps: list[Step]) -> dict[str, int]:
    """One partition's stream time: the counts of the seconds closed by the end (grace 0.5 s)."""
    stream = -1
    seen: dict[tuple[str, int], int] = defaultdict(int)
    for step in steps:
        stream = max(stream, step.n)
        start = step.n - step.n % 1000
        if start + 1000 + 500 > stream:
            seen[(step.key, start)] += 1
    return {f"{key}@{start}": n for (key, start), n in seen.items() if start + 1500 <= stream}


async def test_windows_close_in_the_runtime_and_survive_a_move_to_a_new_disk(
    tmp_path: Path,
) -> None:
    broker = new_broker()
    # One key, so one partition and one stream time: the reference is plain.
    times = [100, 400, 900, 1200, 800, 1700, 2600, 1400, 3100, 900, 4200, 5000, 6900]
    steps = [Step(key="a", n=t) for t in times]
    await publish(broker, steps[:7])
    await run_until_committed_by(broker, WINDOWED, tmp_path / "disk-a")
    await publish(broker, steps[7:])
    await run_until_committed_by(broker, WINDOWED, tmp_path / "disk-b")
    assert windows_out(broker) == reference_counts(steps)
    # 800 is in the first second's grace; 1400 and 900 come after their seconds closed.
    assert windows_out(broker) == {
        "a@0": 4,
        "a@1000": 2,
        "a@2000": 1,
        "a@3000": 1,
        "a@4000": 1,
        "a@5000": 1,
    }


async def run_until_committed_by(
    broker: MemoryBroker, processor: Processor[Step], disk: Path
) -> None:
    runtime, run = await start_replica(broker, processor, "r1", disk)
    try:
        await until(lambda: all_committed(broker, processor.group_id), "every step committed")
    finally:
        runtime.request_stop()
        assert await run == EXIT_OK


async def test_a_replay_keeps_its_own_state_and_leaves_the_live_state_alone(
    tmp_path: Path,
) -> None:
    broker = new_broker()
    steps = [Step(key="a", n=n) for n in range(1, 21)]
    await publish(broker, steps)
    await run_until_committed(broker, tmp_path, "live")
    live = changelog_values(broker)
    assert live == {"a": sum(range(1, 21))}
    ends_now = {log.partition: log.high_watermark for log in broker.topic(SOURCE.name).partitions}
    ranges = {p: PartitionRange(p, 0, end) for p, end in ends_now.items() if end}
    plan = ReplayPlan(name="backfill", topic=SOURCE.name, ranges=ranges)
    _, run = await start_replica(broker, TOTALLER, "replay", tmp_path, replay=plan)
    assert await asyncio.wait_for(run, 10) == EXIT_OK
    # The replay's group has changelogs of its own; it started empty, so it counts the range.
    assert changelog_values(broker, plan.group) == live
    assert changelog_values(broker) == live, "the live group's state was changed by the replay"
