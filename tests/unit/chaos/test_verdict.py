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


def counted(source: InputRecord, position: int, key_count: int) -> OutputRecord:
    return output(source, position, START + position / 100)._replace(key_count=key_count)


def test_a_stateful_checkers_counts_are_judged_against_each_inputs_place() -> None:
    records = inputs(9)  # k0, k1, k2 three times each: places 1, 1, 1, 2, 2, 2, 3, 3, 3
    places = [1 + offset // 3 for offset in range(9)]
    exact = [counted(r, i, places[i]) for i, r in enumerate(records)]
    verdict = judge(records, exact, [], [], (START, START + 1))
    assert verdict.counted and (verdict.counts_behind, verdict.counts_ahead) == (0, 0)
    # A crash redid k1's second event after its change was kept: counted twice, allowed;
    # its key's later counts are one up, and it is still one input counted twice.
    redone = [*exact[:7], counted(records[4], 9, 3), counted(records[7], 10, 4)]
    assert judge(records, redone, [], [], (START, START + 1)).counts_ahead == 1
    # A lost change: k2's third event counted as its second.
    lost = [*exact[:8], counted(records[8], 8, 2)]
    verdict = judge(records, lost, [], [], (START, START + 1))
    assert verdict.counts_behind == 1
    assert verdict.count_examples == ["k2: input 0@8 is its key's event 3 but was counted as 2"]
    # A dead letter leaves no count: the key's next event takes its place.
    shifted = [
        *exact[:3],
        *[counted(r, i, places[i] - 1) for i, r in enumerate(records) if i in (3, 6)],
    ]
    verdict = judge(records, shifted, [(0, 0)], [], (START, START + 1))
    assert verdict.counts_behind == 0, verdict.count_examples


def test_outputs_of_a_stateless_checker_are_not_counted() -> None:
    records = inputs(10)
    assert not judge(records, steady(records), [], [], (START, START + 1)).counted
