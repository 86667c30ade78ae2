"""The in-flight bound: what a worker fetches next (pipeline.runtime.fetch_plan)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipeline.runtime.fetch_plan import fetch_plan

PARTITIONS = list(range(12))


def test_nothing_is_fetched_at_the_bound() -> None:
    held = {p: 500 for p in PARTITIONS[:10]}
    assert fetch_plan(PARTITIONS, held, set(), limit=5_000, batch_records=100) == ([], 0)


def test_a_partition_holding_its_share_is_left_out_and_the_others_fetch() -> None:
    # The slow partition 0 holds its share (12 partitions, 6,000: 500 each).
    held = {0: 500, 1: 20}
    fetchable, room = fetch_plan(PARTITIONS, held, set(), limit=6_000, batch_records=100)
    assert 0 not in fetchable
    assert fetchable == PARTITIONS[1:]
    assert room == 6_000 - 520


def test_a_partition_alone_with_a_backlog_may_hold_two_batches() -> None:
    held = {3: 1_500}
    fetchable, _ = fetch_plan(PARTITIONS, held, set(), limit=1_200, batch_records=1_000)
    assert fetchable == []  # over the limit
    fetchable, _ = fetch_plan(PARTITIONS, held, set(), limit=12_000, batch_records=1_000)
    assert 3 in fetchable  # its share is 2 batches, not 12,000 / 12


def test_held_back_partitions_are_not_fetched() -> None:
    fetchable, room = fetch_plan(PARTITIONS, {}, {2, 5}, limit=1_000, batch_records=10)
    assert 2 not in fetchable and 5 not in fetchable
    assert len(fetchable) == 10 and room == 1_000


@given(
    held=st.dictionaries(st.sampled_from(PARTITIONS), st.integers(0, 3_000)),
    limit=st.integers(1, 50_000),
    batch=st.integers(1, 2_000),
)
def test_fetching_never_goes_past_the_bound(held: dict[int, int], limit: int, batch: int) -> None:
    fetchable, room = fetch_plan(PARTITIONS, held, set(), limit=limit, batch_records=batch)
    total = sum(held.values())
    # getmany(max_records=room): what comes back fits under the limit.
    assert room == max(0, limit - total)
    if not room:
        assert fetchable == []
    share = max(limit // len(PARTITIONS), 2 * batch)
    for partition in PARTITIONS:
        assert (partition in fetchable) == (room > 0 and held.get(partition, 0) < share)
