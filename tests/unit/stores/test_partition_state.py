"""What a handler reads while batches are in flight: the newest write, whatever is acknowledged."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.publishing.delivery import AckedBatch, DeliveryList
from pipeline.stores.partition_state import BatchChanges, PartitionState
from pipeline.stores.rocks import UNBOUNDED
from pipeline.stores.store_spec import Store
from pipeline.wire.codec import EncodedEvent

STORE: Store[int] = Store("s")
KEYS = st.sampled_from([b"a", b"b", b"c"])
WRITE = st.tuples(KEYS, st.one_of(st.none(), st.binary(min_size=1, max_size=3)))
STEP = st.one_of(
    st.tuples(st.just("record"), st.lists(WRITE, max_size=3)),
    st.tuples(st.just("end_batch"), st.none()),
    st.tuples(st.just("ack"), st.none()),
)


def acked(changes: BatchChanges, next_offset: int) -> None:
    """As the publisher leaves it once the broker answered: the store's delivery list."""
    loop = asyncio.new_event_loop()
    try:
        future = loop.create_future()
        records = [EncodedEvent(k, v, [], "") for k, v in changes.changes["s"].items()]
        future.set_result(
            DeliveryList(
                "c", records, [AckedBatch(0, next_offset - len(records), list(range(len(records))))]
            )
        )
        changes.acks["s"] = future
    finally:
        loop.close()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(STEP, max_size=30))
def test_reads_see_the_newest_write_and_the_copy_only_what_was_acknowledged(
    tmp_path: Path, steps: list[tuple[str, object]]
) -> None:
    directory = tmp_path / str(abs(hash(tuple(map(str, steps)))))
    state = PartitionState((STORE,), "g", directory, 0, UNBOUNDED)
    try:
        newest: dict[bytes, bytes | None] = {}
        acknowledged: dict[bytes, bytes | None] = {}
        in_flight: list[tuple[BatchChanges, dict[bytes, bytes | None]]] = []
        offset = 0
        for kind, arg in steps:
            if kind == "record":
                staged = {"s": dict(arg)}  # type: ignore[call-overload]
                state.merge(staged)
                newest.update(staged["s"])
            elif kind == "end_batch":
                ended = state.end_batch()
                if ended is not None:
                    in_flight.append((ended, dict(ended.changes["s"])))
            elif in_flight:
                ended, written = in_flight.pop(0)
                offset += len(written)
                acked(ended, offset)
                state.acknowledged(ended)
                acknowledged.update(written)
            for key in (b"a", b"b", b"c"):
                assert state.read("s", key) == newest.get(key)
                assert state.local["s"].get(key) == acknowledged.get(key)
            assert state.local["s"].position == offset
        state.drop_unacknowledged()
        for key in (b"a", b"b", b"c"):
            assert state.read("s", key) == acknowledged.get(key), "dropped batches still read"
    finally:
        state.close()
