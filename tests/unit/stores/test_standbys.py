"""Standby replicas: where the warm copies go, and a failover that restores nothing from them.

The placement is a pure function of the group's description, checked over
many groups; the failover runs two replicas on the in-memory broker, each
on its own disk, and stops one: the survivor takes its partitions and
reads back nothing, where without standbys it reads their whole changelogs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import ConfigError
from pipeline.kafka.memory import MemoryBroker
from pipeline.kafka.port import GroupMember, TopicPartition
from pipeline.metric_names import STANDBY_RECORDS, STATE_RESTORED
from pipeline.processor import Processor
from pipeline.runtime.standby_placement import standby_partitions
from pipeline.runtime.worker import EXIT_OK, Runtime
from pipeline.stores.store_spec import changelog_topic
from tests.unit.runtime.support import SOURCE, Step, all_committed, new_broker, start_replica, until
from tests.unit.stores.test_state_runtime import (
    TOTALLER,
    changelog_values,
    expected_totals,
    publish,
)

TOPIC = "orders"


def group(owners: list[int], members: int) -> list[GroupMember]:
    """`owners[p]`: the member owning partition p."""
    return [
        GroupMember(
            f"m{index}",
            f"pipeline-r{index}",
            "host",
            tuple(TopicPartition(TOPIC, p) for p, owner in enumerate(owners) if owner == index),
        )
        for index in range(members)
    ]


@st.composite
def groups(draw: st.DrawFn) -> tuple[list[GroupMember], int]:
    members = draw(st.integers(1, 6))
    owners = draw(st.lists(st.integers(0, members - 1), min_size=0, max_size=24))
    return group(owners, members), len(owners)


@settings(max_examples=60, deadline=None)
@given(groups(), st.integers(1, 3))
def test_each_partition_has_its_copies_on_members_other_than_its_owner(
    described: tuple[list[GroupMember], int], copies: int
) -> None:
    members, partitions = described
    kept = {m.client_id: standby_partitions(members, m.client_id, TOPIC, copies) for m in members}
    for partition in range(partitions):
        keepers = [name for name, held in kept.items() if partition in held]
        owner = next(m for m in members if TopicPartition(TOPIC, partition) in m.assignment)
        assert owner.client_id not in keepers
        assert len(keepers) == min(copies, len(members) - 1), (partition, keepers)


def test_a_dead_members_partitions_have_their_copies_spread_over_the_survivors() -> None:
    # r0 owns 0, 1, 2: the assignor will deal them out to r1, r2 and r3 when it dies.
    members = group([0, 0, 0, 1, 2, 3], 4)
    held = {m.client_id: standby_partitions(members, m.client_id, TOPIC, 1) for m in members}
    keepers = [next(name for name, kept in held.items() if p in kept) for p in (0, 1, 2)]
    assert sorted(keepers) == ["pipeline-r1", "pipeline-r2", "pipeline-r3"]


def test_a_replica_missing_from_the_description_or_alone_keeps_nothing() -> None:
    members = group([0, 1, 0, 1], 2)
    assert standby_partitions(members, "pipeline-someone-else", TOPIC, 1) == frozenset()
    assert standby_partitions(members[:1], "pipeline-r0", TOPIC, 1) == frozenset()
    assert standby_partitions(members, "pipeline-r0", "another-topic", 1) == frozenset()


def test_standbys_are_refused_without_state_or_below_zero() -> None:
    with pytest.raises(ConfigError, match="keeps no state"):
        Processor("p", SOURCE, TOTALLER.handler, standbys=1)
    with pytest.raises(ConfigError, match="0 or more"):
        dataclasses.replace(TOTALLER, standbys=-1)


def copies_current(broker: MemoryBroker, runtime: Runtime, others: set[int]) -> bool:
    """It holds a copy of each partition in `others`, as far as its changelog goes."""
    standbys = runtime.standbys
    assert standbys is not None
    if set(standbys.held) != others:
        return False
    changelog = broker.topic(changelog_topic("totaller", "totals"))
    return all(
        state.local["totals"].position >= changelog.partitions[p].high_watermark
        for p, state in standbys.held.items()
    )


def owned(broker: MemoryBroker, runtime: Runtime) -> set[int]:
    return {tp.partition for tp in runtime.consumer.assignment()}


@pytest.mark.parametrize("standbys", [1, 0])
async def test_a_failover_to_a_warm_copy_reads_nothing_back(tmp_path: Path, standbys: int) -> None:
    broker = new_broker()
    first = [Step(key=f"k{n}", n=n) for n in range(600)]
    await publish(broker, first)
    keeper = dataclasses.replace(TOTALLER, standbys=standbys)
    one, one_run = await start_replica(broker, keeper, "r1", tmp_path / "disk-1")
    two, two_run = await start_replica(broker, keeper, "r2", tmp_path / "disk-2")
    survivor_done = False
    try:
        await until(lambda: all_committed(broker, "totaller"), "every step committed")
        theirs = owned(broker, two)
        assert theirs and owned(broker, one), "both replicas own partitions"
        if standbys:
            await until(
                lambda: copies_current(broker, one, theirs), "r1's copies of r2's partitions"
            )
            assert one.metrics.total(STANDBY_RECORDS) > 0
        restored_before = one.metrics.total(STATE_RESTORED)
        two.request_stop()
        assert await two_run == EXIT_OK
        later = [Step(key=f"k{n % 50}", n=n) for n in range(100)]
        await publish(broker, later)
        await until(lambda: all_committed(broker, "totaller"), "the later steps committed")
        assert owned(broker, one) == {0, 1, 2}
        read_back = one.metrics.total(STATE_RESTORED) - restored_before
        if standbys:
            assert read_back == 0, "the copies were current: nothing to read back"
        else:
            assert read_back > 0, "without standbys the survivor restores r2's partitions"
        one.request_stop()
        survivor_done = True
        assert await one_run == EXIT_OK
    finally:
        if not survivor_done:
            for runtime in (one, two):
                runtime.request_stop()
    assert changelog_values(broker) == expected_totals(first + later)
