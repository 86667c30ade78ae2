"""Where the confluent adapter resumes partitions: no record handed over twice.

Both were found by the rolling-restart test on confluent (810 records handled
twice): an eager re-assignment sent every partition back to its commit, and
the records fetched again joined those still waiting in the fetched-ahead
buffer, in one list.
"""

from __future__ import annotations

from confluent_kafka import OFFSET_INVALID
from confluent_kafka import TopicPartition as TheirPartition
from hypothesis import given
from hypothesis import strategies as st

from pipeline.kafka.confluent.consumer import ConfluentConsumer
from pipeline.kafka.confluent.fetched import FetchedAhead, PositionMirror
from pipeline.kafka.confluent.records import ConfluentRecord
from pipeline.kafka.port import TopicPartition

TP = TopicPartition("t", 0)


def records(first: int, count: int) -> list[ConfluentRecord]:
    return [ConfluentRecord("t", 0, n, 0, None, b"v", []) for n in range(first, first + count)]


@given(st.lists(st.tuples(st.integers(0, 50), st.integers(1, 20)), min_size=1, max_size=8))
def test_fetched_ahead_hands_each_offset_over_once_in_order(
    fetches: list[tuple[int, int]],
) -> None:
    ahead = FetchedAhead()
    for first, count in fetches:
        ahead.keep(TP, records(first, count))
    offsets = [r.offset for r in ahead.take({TP}, 10_000).get(TP, [])]
    assert offsets == sorted(set(offsets))
    assert offsets[0] == fetches[0][0]


class Client:
    """librdkafka's position() and assign(), recorded."""

    def __init__(self, positions: dict[int, int]) -> None:
        self.positions = positions
        self.assigned: dict[int, int] = {}
        self.paused: set[int] = set()

    def position(self, partitions: list[TheirPartition]) -> list[TheirPartition]:
        return [
            TheirPartition(tp.topic, tp.partition, self.positions.get(tp.partition, -1001))
            for tp in partitions
        ]

    def assign(self, partitions: list[TheirPartition]) -> None:
        self.assigned = {tp.partition: tp.offset for tp in partitions}
        self.paused = set()  # an assignment starts unpaused

    def pause(self, partitions: list[TheirPartition]) -> None:
        self.paused |= {tp.partition for tp in partitions}

    def get_watermark_offsets(self, tp: TheirPartition, cached: bool) -> tuple[int, int]:
        return (0, 1000)


def test_an_eager_reassignment_moves_only_the_restarted_partitions() -> None:
    consumer = ConfluentConsumer({"group.id": "g"}, "eager", "g")
    assignment = consumer._assignment
    assignment.owned = {TopicPartition("t", n) for n in range(5)}
    assignment.starts = {TopicPartition("t", 2): 7}
    consumer._mirror.unsettle([TopicPartition("t", 4)])  # its records were dropped
    assignment.paused = {TopicPartition("t", 1), TopicPartition("t", 9)}  # 9: no longer held
    client = Client(positions={0: 100, 1: 200, 2: 300, 4: 400})  # 3: nothing fetched yet
    assignment.assign_all_again(client, {TopicPartition("t", 0)})  # type: ignore[arg-type]
    assert client.assigned == {
        0: OFFSET_INVALID,  # restarted: from its commit
        1: 200,  # goes on past what was handed over
        2: 7,  # a seek not yet reached still holds
        3: OFFSET_INVALID,  # no position yet: from its commit
        4: OFFSET_INVALID,  # librdkafka's position counts dropped records: from its commit
    }
    assert client.paused == {1}  # what the runtime held back stays held back


def test_a_position_counting_dropped_records_is_not_trusted_until_a_record_comes() -> None:
    mirror = PositionMirror()
    mirror.unsettle([TP])
    client = Client(positions={0: 240})  # past records fetched, then dropped
    mirror.refresh(client, [TP], {})  # type: ignore[arg-type]
    assert TP not in mirror.positions
    mirror.refresh(client, [TP], {TP: records(0, 240)})  # type: ignore[arg-type]
    assert mirror.positions[TP] == 240
