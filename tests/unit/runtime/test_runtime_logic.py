"""Pure parts of the consumer runtime: offsets, breakers, retries."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.errors import PipelineError
from pipeline.metrics import Metrics, labels_of
from pipeline.processor import Emit, Processor
from pipeline.resilience.retry import RetryPolicy
from pipeline.runtime.offset_tracker import OffsetTracker
from pipeline.wire.codec import derived_event_id
from tests.unit.models import SAMPLE_SPEC, Other, Sample


def test_committable_never_passes_an_unfinished_batch() -> None:
    tracker = OffsetTracker(10)
    first = tracker.started(10, 11, 2)
    second = tracker.started(12, 12, 1)
    third = tracker.started(15, 20, 4)  # gaps: compacted offsets
    tracker.finished(second)
    assert tracker.committable == 10
    assert tracker.in_progress == 7
    tracker.finished(first)
    assert tracker.committable == 13
    tracker.finished(third)
    assert tracker.committable == 21
    assert tracker.in_progress == 0


@given(st.permutations(list(range(30))))
def test_committable_is_the_low_water_mark_whatever_the_finishing_order(order: list[int]) -> None:
    tracker = OffsetTracker(100)
    tokens = [tracker.started(100 + 3 * i, 100 + 3 * i + 2, 3) for i in range(30)]
    done: set[int] = set()
    for index in order:
        tracker.finished(tokens[index])
        done.add(index)
        expected = 0
        while expected in done:
            expected += 1
        assert tracker.committable == 100 + 3 * expected
        assert tracker.in_progress == 3 * (30 - expected)


def test_tracker_learns_its_start_from_the_first_record() -> None:
    tracker = OffsetTracker()
    assert tracker.committable == -1
    token = tracker.started(500, 500, 1)
    assert tracker.committed == 500
    tracker.finished(token)
    assert tracker.committable == 501
    assert tracker.uncommitted == 1
    tracker.mark_committed(501)
    assert tracker.uncommitted == 0


def test_batches_must_follow_each_other() -> None:
    tracker = OffsetTracker(0)
    tracker.started(5, 9, 5)
    with pytest.raises(ValueError):
        tracker.started(9, 12, 4)


def test_retry_delay_grows_to_the_cap_with_jitter_below_it() -> None:
    policy = RetryPolicy(attempts=10, base_delay_s=0.1, max_delay_s=1.0, jitter=0.5)
    rng = random.Random(3)
    for failures, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (9, 1.0)]:
        delay = policy.delay_s(failures, rng)
        assert ceiling * 0.5 <= delay <= ceiling


def test_a_dependency_down_for_hours_keeps_its_capped_delay() -> None:
    """A dependency retried forever counts past 1,024 failures; 2**1024 overflowed a float
    and crashed the partition's worker."""
    policy = RetryPolicy(base_delay_s=0.1, max_delay_s=30.0, jitter=0.0)
    assert [policy.delay_s(n) for n in (1_025, 10**6)] == [30.0, 30.0]


def test_retry_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


def test_output_topic_is_chosen_by_type_and_ambiguity_is_an_error() -> None:
    out = SAMPLE_SPEC.with_name("out")
    processor = Processor("p", SAMPLE_SPEC, lambda e, c: None, outputs=(out,))  # type: ignore[arg-type, return-value]
    assert processor.output_for(Sample.model_construct()) is out
    with pytest.raises(PipelineError, match="returned a Other"):
        processor.output_for(Other(entity_id="x"))
    twice = Processor("p", SAMPLE_SPEC, lambda e, c: None, outputs=(out, out.with_name("out2")))  # type: ignore[arg-type, return-value]
    with pytest.raises(PipelineError, match="return Emit"):
        twice.output_for(Sample.model_construct())
    assert Emit(out, Sample.model_construct()).topic is out


def test_prefix_renames_topics_and_group() -> None:
    processor = Processor("p", SAMPLE_SPEC, lambda e, c: None)  # type: ignore[arg-type, return-value]
    prefixed = processor.with_prefix("dev.")
    assert prefixed.source.name == "dev.samples"
    assert prefixed.group_id == "dev.p"


def test_derived_ids_are_stable_uuids() -> None:
    first = derived_event_id("abc", "p:0")
    assert first == derived_event_id("abc", "p:0")
    assert first != derived_event_id("abc", "p:1")
    assert first[14] == "5"


def test_metrics_render_counters_and_gauges() -> None:
    metrics = Metrics()
    metrics.inc("processed", 3)
    metrics.inc("dead_lettered", labels={"error": 'Bad"Quote'})
    metrics.gauge("partition_queued_records", lambda: {labels_of(partition=1): 7.0})
    text = metrics.render()
    assert "pipeline_processed_total 3.0" in text
    assert 'pipeline_dead_lettered_total{error="Bad\\"Quote"} 1.0' in text
    assert 'pipeline_partition_queued_records{partition="1"} 7.0' in text
    assert "# HELP pipeline_partition_queued_records Records in a bulkhead." in text
    assert "process_resident_memory_bytes" in text


def test_cheap_derived_ids_are_stable_distinct_uuids() -> None:
    import uuid as uuid_module

    from pipeline.wire.codec import derived_event_ids, output_salt

    source = str(uuid_module.uuid4())
    salts = [output_salt("proc", i) for i in range(3)]
    ids = derived_event_ids(source, salts)
    assert ids == derived_event_ids(source, salts)
    assert len(set(ids)) == 3 and source not in ids
    for event_id in ids:
        parsed = uuid_module.UUID(event_id)
        assert parsed.version == 8
        assert str(parsed) == event_id
    assert derived_event_ids(source, [output_salt("other", 0)]) != ids[:1]
    assert derived_event_ids("not-a-uuid", salts[:1]) == derived_event_ids("not-a-uuid", salts[:1])


def test_record_queue_takes_batches_across_fetches_in_order() -> None:
    from pipeline.runtime.record_queue import RecordQueue

    queue: RecordQueue[int] = RecordQueue()
    queue.extend(list(range(0, 5)))
    queue.extend([])
    queue.extend(list(range(5, 12)))
    assert len(queue) == 12
    assert queue.take(3) == [0, 1, 2]
    assert queue.take(4) == [3, 4, 5, 6]
    assert len(queue) == 5
    assert queue.take(100) == [7, 8, 9, 10, 11]
    assert not queue
    queue.extend([1, 2])
    queue.clear()
    assert len(queue) == 0 and queue.take(1) == []
