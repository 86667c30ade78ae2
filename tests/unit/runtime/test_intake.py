"""A partition takes each record once, whatever order and repeats the fetches bring."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.kafka.memory.log import MemoryRecord
from pipeline.kafka.port import TopicPartition
from pipeline.runtime.intake import Intake, mean_record_bytes

TP = TopicPartition("t", 0)


def fetched(offsets: list[int]) -> list[MemoryRecord]:
    return [MemoryRecord("t", 0, offset, 0, b"k", b"v" * 10, []) for offset in offsets]


@given(st.lists(st.lists(st.integers(0, 60), max_size=12), max_size=8))
def test_every_offset_fetched_is_taken_once_and_in_order(fetches: list[list[int]]) -> None:
    intake = Intake(TP)
    taken: list[int] = []
    for offsets in fetches:
        # A fetch comes in offset order, as the clients hand it; it may go back or repeat.
        taken.extend(record.offset for record in intake.fresh(fetched(sorted(offsets))))
    assert taken == sorted(set(taken)), "a record was taken twice or out of order"
    highest = -1
    for offsets in fetches:  # nothing beyond what was already taken is lost
        for offset in sorted(offsets):
            if offset > highest:
                assert offset in taken
                highest = offset


def test_records_fetched_again_are_dropped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    intake = Intake(TP)
    assert [r.offset for r in intake.fresh(fetched([5, 6, 7]))] == [5, 6, 7]
    with caplog.at_level(logging.WARNING, "pipeline.worker"):
        assert [r.offset for r in intake.fresh(fetched([6, 7, 8]))] == [8]
    assert "dropping 2 record(s) already in hand" in caplog.text
    assert intake.fresh(fetched([3, 4])) == []


def test_a_queue_is_sized_by_its_keys_and_values() -> None:
    assert mean_record_bytes(fetched([1, 2])) == 11.0
