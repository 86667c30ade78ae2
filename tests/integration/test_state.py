"""A processor's own state on a real broker, with replicas as real OS processes.

A count per key over 12 partitions and two replicas, each on its own disk
(so every partition that moves is restored from its changelog): a rolling
SIGTERM restart leaves the counts exact; a SIGKILL loses no count, and
counts twice at most what the dead replica held uncommitted (the
at-least-once promise of docs/concepts/state.md).
"""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import msgpack
import pytest

from pipeline.kafka.aiokafka.probe import run_sync
from pipeline.kafka.connect import connect
from pipeline.reading.offsets import committed_offsets
from pipeline.stores.store_spec import changelog_topic
from tests.integration.harness import Harness, keyed_events
from tests.integration.processors import PROCESSORS, Keyed
from tests.replicas import Replica, poll_until
from tests.support import read_all

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEYS = 1000


def counts_in_changelog(harness: Harness, processor: str = "counter") -> dict[str, int]:
    """Each key's last count in the changelog: what compaction keeps, what a restore reads
    (committed transactions only, as an exactly-once restore reads it)."""
    topic = changelog_topic(harness.prefix + processor, "counts")
    last: dict[str, int] = {}
    records = run_sync(read_all(connect(harness.settings), topic, committed_only=True))
    for record in sorted(records, key=lambda r: r.offset):
        assert record.key is not None and record.value is not None
        last[record.key.decode()] = msgpack.unpackb(record.value)
    return last


def committed(harness: Harness, processor: str = "counter") -> int:
    group = harness.prefix + processor
    offsets = run_sync(committed_offsets(connect(harness.settings), group, harness.source.name))
    return sum(offsets.values())


def start(harness: Harness, replica_id: str, disk: Path, processor: str = "counter") -> Replica:
    return harness.start(processor, replica_id, "--store-dir", str(disk))


def expected(events: list[Keyed]) -> dict[str, int]:
    return dict(Counter(event.key for event in events))


@pytest.mark.long
def test_a_rolling_restart_keeps_every_count_exact(harness: Harness, tmp_path: Path) -> None:
    disks = [tmp_path / "disk-a", tmp_path / "disk-b"]
    replicas = [start(harness, f"r{i}", disks[i]) for i in range(2)]
    for replica in replicas:
        replica.wait_ready()
    events = keyed_events(18_000, keys=KEYS)
    harness.publish(events[:6_000])
    for index, replica in enumerate(replicas):
        target = 2_500 * (index + 1)
        poll_until(lambda t=target: committed(harness) >= t, 120, what=f"{target} committed")
        assert replica.stop() == 0, replica.tail()
        # Back on an empty disk: what it takes on is restored from the changelogs.
        start(harness, f"r{index}-b", tmp_path / f"disk-{index}-b")
        harness.publish(events[6_000 * (index + 1) : 6_000 * (index + 2)])
    harness.wait_drained("counter")
    assert counts_in_changelog(harness) == expected(events)
    restored = [r for r in harness.replicas if r.running]
    assert any("stores restored" in r.tail(400) for r in restored), "nothing was restored"


def test_a_sigkill_loses_no_count_and_repeats_at_most_the_uncommitted(
    harness: Harness, tmp_path: Path
) -> None:
    replicas = [start(harness, f"r{i}", tmp_path / f"disk-{i}") for i in range(2)]
    for replica in replicas:
        replica.wait_ready()
    events = keyed_events(24_000, keys=KEYS)
    harness.publish(events[:12_000])
    victim = replicas[1]
    poll_until(lambda: committed(harness) >= 4_000, 120, what="some progress")
    partitions_of_victim = victim.get("/metrics")[1].count("pipeline_partition_committed_offset{")
    victim.signal(signal.SIGKILL)
    victim.wait()
    harness.publish(events[12_000:])
    # Back on the same disk: its copies are where the changelog was acknowledged.
    start(harness, "r1-b", tmp_path / "disk-1")
    harness.wait_drained("counter")
    counts = counts_in_changelog(harness)
    want = expected(events)
    lost = {key: want[key] - counts.get(key, 0) for key in want if counts.get(key, 0) < want[key]}
    assert not lost, f"counts lost: {sorted(lost.items())[:10]}"
    repeated = sum(counts.values()) - len(events)
    bound = partitions_of_victim * PROCESSORS["counter"].queue_records
    assert repeated <= bound, f"{repeated} events counted twice > bound {bound}"
    print(f"SIGKILL with state: {repeated} counted twice, bound {bound}")


@pytest.mark.both_clients
def test_exactly_once_state_counts_every_event_once_through_a_sigkill(
    harness: Harness, tmp_path: Path
) -> None:
    replicas = [start(harness, f"r{i}", tmp_path / f"disk-{i}", "counter_eos") for i in range(2)]
    for replica in replicas:
        replica.wait_ready()
    events = keyed_events(20_000, keys=KEYS)
    harness.publish(events[:10_000])
    poll_until(lambda: committed(harness, "counter_eos") >= 3_000, 120, what="some progress")
    replicas[1].signal(signal.SIGKILL)
    replicas[1].wait()
    harness.publish(events[10_000:])
    # One back on its own disk (the tail), and the survivor takes the rest meanwhile.
    start(harness, "r1-b", tmp_path / "disk-1", "counter_eos")
    harness.wait_drained("counter_eos")
    assert counts_in_changelog(harness, "counter_eos") == expected(events)
