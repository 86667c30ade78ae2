"""The chaos verdict counts what a fault did from the topics alone, and nothing else."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipeline.chaos.verdict import InputRecord, OutputRecord, judge

START = 1_000.0


def inputs(count: int, keys: int = 3) -> list[InputRecord]:
    return [InputRecord(0, offset, f"k{offset % keys}") for offset in range(count)]


def output(source: InputRecord, position: int, at_s: float, replica: str = "r1") -> OutputRecord:
    return OutputRecord(
        0, position, source.key, source.partition, source.offset, int(at_s * 1000), replica
    )


def steady(records: list[InputRecord], rate: int = 100) -> list[OutputRecord]:
    return [output(r, i, START + i / rate) for i, r in enumerate(records)]


def test_a_clean_run_has_nothing_to_report() -> None:
    records = inputs(1000)
    verdict = judge(records, steady(records), [], [], (START, START + 10))
    assert (verdict.lost, verdict.duplicates, verdict.order_violations) == (0, 0, 0)
    assert verdict.max_gap_s < 0.02 and verdict.recovery_s == 0 and verdict.recovered


def test_lost_duplicated_and_dead_lettered_inputs_are_told_apart() -> None:
    records = inputs(10)
    outputs = [*steady(records[:6]), output(records[2], 6, START + 0.07)]
    verdict = judge(records, outputs, [(0, 9)], [], (START, START + 1))
    assert verdict.lost == 3  # offsets 6, 7, 8: 9 is in the DLQ
    assert verdict.lost_examples == ["k0 at 0@6", "k1 at 0@7", "k2 at 0@8"]
    assert verdict.duplicates == 1 and verdict.dead_letters == 1


def test_a_later_input_stored_ahead_of_an_earlier_one_of_its_key_is_an_order_violation() -> None:
    records = inputs(6, keys=1)
    stored = [records[0], records[3], records[1], records[2], records[4], records[5]]
    outputs = [output(r, i, START + i / 10) for i, r in enumerate(stored)]
    verdict = judge(records, outputs, [], [], (START, START + 1))
    assert verdict.order_violations == 2
    assert "input offset 1 stored at 0@2, after input offset 3" in verdict.order_examples[0]


def test_a_redo_of_what_was_already_stored_is_duplicates_not_disorder() -> None:
    records = inputs(6, keys=1)
    stored = [*records[:4], *records[2:6]]  # a crash redid offsets 2 and 3
    outputs = [output(r, i, START + i / 10) for i, r in enumerate(stored)]
    verdict = judge(records, outputs, [], [], (START, START + 1))
    assert (verdict.duplicates, verdict.order_violations) == (2, 0)


def test_the_gap_and_the_recovery_come_from_output_times() -> None:
    # 100/s for 20 s, nothing from 20 s to 26 s, then 100/s again until 60 s.
    times = [START + i / 100 for i in range(2000)] + [START + 26 + i / 100 for i in range(3400)]
    records = inputs(len(times))
    outputs = [output(r, i, t) for i, (r, t) in enumerate(zip(records, times, strict=True))]
    verdict = judge(records, outputs, [], [START + 20], (START, START + 60))
    assert 5.9 < verdict.max_gap_s < 6.1
    assert 5 <= verdict.recovery_s <= 7 and verdict.recovered


def test_an_output_rate_not_back_before_the_load_ends_is_not_recovered() -> None:
    times = [START + i / 100 for i in range(2000)] + [START + 20 + i / 50 for i in range(1000)]
    records = inputs(len(times))
    outputs = [output(r, i, t) for i, (r, t) in enumerate(zip(records, times, strict=True))]
    verdict = judge(records, outputs, [], [START + 20], (START, START + 40))
    assert not verdict.recovered and verdict.recovery_s == 20


@given(st.permutations(list(range(30))))
def test_order_violations_are_zero_exactly_when_each_keys_outputs_keep_input_order(
    stored_order: list[int],
) -> None:
    records = inputs(30, keys=3)
    outputs = [output(records[o], i, START + i / 10) for i, o in enumerate(stored_order)]
    verdict = judge(records, outputs, [], [], (START, START + 3))
    in_order = all(
        [o for o in stored_order if o % 3 == key] == sorted(o for o in stored_order if o % 3 == key)
        for key in range(3)
    )
    assert (verdict.order_violations == 0) == in_order
    assert verdict.lost == 0 and verdict.duplicates == 0
