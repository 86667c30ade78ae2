"""Rebalances with state, on the in-memory broker: what Quix Streams' users hit, designed out.

#1131: a revoke closed the stores one after another inside the rebalance
callback, long enough to miss the poll interval and loop the group; here
they close off the loop. PR #1146: a rebalance during restoration
crash-looped replicas; here the restoration just ends and the next owner
restores again, and the counts stay exact.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from pipeline.kafka.memory import MemoryClients
from pipeline.kafka.port import Consumer, ConsumerOptions, Record, TopicPartition
from pipeline.metric_names import STATE_RESTORED
from pipeline.runtime import restoration
from pipeline.runtime.worker import EXIT_OK
from pipeline.stores.local_store import LocalStore
from tests.unit.runtime.support import Step, all_committed, new_broker, start_replica, until
from tests.unit.stores.test_state_runtime import (
    TOTALLER,
    changelog_values,
    expected_totals,
    publish,
    run_until_committed,
)


class SlowRestores(MemoryClients):
    """Consumers outside a group (the restoring ones) wait 10 ms before each fetch."""

    def consumer(self, options: ConsumerOptions) -> Consumer:
        consumer = super().consumer(options)
        if options.group_id is not None:
            return consumer
        fetch = consumer.fetch

        async def slow_fetch(
            partitions: Sequence[TopicPartition], timeout_s: float, max_records: int
        ) -> Mapping[TopicPartition, Sequence[Record]]:
            await asyncio.sleep(0.01)
            return await fetch(partitions, timeout_s, max_records)

        setattr(consumer, "fetch", slow_fetch)  # noqa: B010 - a method replaced on one object
        return consumer


async def test_stores_close_off_the_event_loop_on_a_revoke(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_thread = threading.get_ident()
    closed_on: list[int] = []
    close = LocalStore.close

    def recording_close(self: LocalStore) -> None:
        closed_on.append(threading.get_ident())
        close(self)

    monkeypatch.setattr(LocalStore, "close", recording_close)
    broker = new_broker()
    await publish(broker, [Step(key=f"k{n}", n=n) for n in range(60)])
    await run_until_committed(broker, tmp_path, "r1")
    assert len(closed_on) == 3, "one store per partition, each closed once"
    assert loop_thread not in closed_on, "a store was closed on the event loop"


async def test_a_rebalance_during_restoration_ends_it_and_the_counts_stay_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pipeline.worker")
    broker = new_broker()
    first = [Step(key=f"k{n}", n=n) for n in range(3_000)]  # 3,000 changelog records
    await publish(broker, first)
    await run_until_committed(broker, tmp_path / "disk-0", "r0")
    # Slow restoration down (small, slow fetches), so the second replica joins during it.
    monkeypatch.setattr(restoration, "RESTORE_FETCH_RECORDS", 5)
    later = [Step(key=f"k{n % 50}", n=n) for n in range(200)]
    await publish(broker, later)
    clients = SlowRestores(broker)
    one, one_run = await start_replica(broker, TOTALLER, "r1", tmp_path / "disk-1", clients=clients)
    # Half of it, a second or so in (each fetch of 5 records waits 10 ms).
    await until(lambda: one.metrics.total(STATE_RESTORED) > 1_500, "half the restoration")
    assert one.metrics.total(STATE_RESTORED) < len(first), "restored before the rebalance"
    # Watched while it runs, and slow rather than stuck: not a stalled partition.
    remaining = re.findall(
        r"pipeline_partition_restore_remaining_records\{[^}]*\} (\S+)", one.metrics.render()
    )
    assert any(float(value) > 0 for value in remaining), remaining
    assert one.partitions.stalled(0.5) is None, "a restoring partition was judged stuck"
    two, two_run = await start_replica(broker, TOTALLER, "r2", tmp_path / "disk-2", clients=clients)
    try:
        await until(lambda: all_committed(broker, "totaller"), "every step committed", 60)
    finally:
        for runtime in (one, two):
            runtime.request_stop()
        assert await one_run == EXIT_OK
        assert await two_run == EXIT_OK
    assert changelog_values(broker) == expected_totals(first + later)
    assert "restoration ended by a revoke" in caplog.text, "the revoke came after it"
