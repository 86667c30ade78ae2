"""One record of 1,000 that hangs its handler, or blocks the loop on every delivery, with two
replicas as real processes on a real broker: it ends in the DLQ with its reason, the other
999 are output once and in order per key, the group's lag reaches 0, both replicas live on.

The poison (and 19 records of its key behind it) is published once the 999 are committed
everywhere: a replica dropped from the group while the poison blocks it then has nothing
else uncommitted in hand, so any duplicate would be the runtime's. (Records another
partition had handled but not yet committed when the loop stopped would be redone by the
next owner: at-least-once, as for any replica the group drops.)
"""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from pipeline.kafka.aiokafka.probe import run_sync
from pipeline.kafka.connect import connect
from pipeline.kafka.partitioner import kafka_partition
from pipeline.wire.codec import header_value
from tests.integration.harness import Harness, keyed_events
from tests.integration.processors import SOURCE, Keyed
from tests.replicas import Replica, poll_until
from tests.support import read_all

pytestmark = pytest.mark.integration

POISON_KEY = "k-poison"


def run_with_one_poison(harness: Harness, processor: str, mode: str) -> list[Replica]:
    replicas = [harness.start(processor, f"{processor}-{n}") for n in range(2)]
    for replica in replicas:
        replica.wait_ready()
    harness.publish(keyed_events(999, keys=50))
    harness.wait_drained(processor, 120)
    poison = Keyed(key=POISON_KEY, seq=0, mode=mode)
    # The poison's key has records after it too: they must wait for it, then go on in order.
    harness.publish([poison, *[Keyed(key=POISON_KEY, seq=n) for n in range(1, 20)]])
    harness.wait_drained(processor, 240)
    return replicas


def healthy(replica: Replica) -> bool:
    try:
        return replica.get("/healthz")[0] == 200
    except OSError:  # its loop is blocked: no answer yet
        return False


def check_the_outcome(harness: Harness, replicas: list[Replica], reason: str) -> str:
    dead = run_sync(read_all(connect(harness.settings), harness.dlq))
    assert len(dead) == 1, f"{len(dead)} dead letters\n{harness.diagnosis()}"
    [letter] = dead
    assert header_value(letter.headers, "dlq-error-type") == reason
    assert int(header_value(letter.headers, "dlq-source-partition") or -1) == kafka_partition(
        POISON_KEY.encode(), SOURCE.partitions
    )
    outputs = [handled for _, _, handled in harness.outputs()]
    seen = Counter((o.key, o.seq) for o in outputs)
    expected = {(e.key, e.seq) for e in keyed_events(999, keys=50)} | {
        (POISON_KEY, n) for n in range(1, 20)
    }
    assert set(seen) == expected
    assert max(seen.values()) == 1, f"{sum(c - 1 for c in seen.values())} duplicates"
    by_key: dict[str, list[int]] = defaultdict(list)
    for output in outputs:
        by_key[output.key].append(output.seq)
    assert all(seqs == sorted(seqs) for seqs in by_key.values())  # per-key order
    for replica in replicas:  # nobody exited, nobody restarting; the last owner the poison
        # blocked answers again once its sleep is over
        poll_until(lambda r=replica: healthy(r), 60, interval_s=1, what=f"{replica.replica_id}")
        assert replica.process.poll() is None, replica.tail(60)
    return header_value(letter.headers, "dlq-error-message") or ""


def test_a_record_that_hangs_its_handler_costs_only_itself(harness: Harness) -> None:
    replicas = run_with_one_poison(harness, "hangs", "hang")
    message = check_the_outcome(harness, replicas, "HandlerTimeout")
    assert "within its deadline of 1s" in message
    logs = "".join(replica.tail(400) for replica in replicas)
    assert "past its deadline of 1s on" in logs


@pytest.mark.long
def test_a_record_that_blocks_the_loop_on_every_delivery_is_quarantined(
    harness: Harness,
) -> None:
    replicas = run_with_one_poison(harness, "blocks", "block")
    message = check_the_outcome(harness, replicas, "Quarantined")
    assert "was in hand when its owner died or was dropped from the group" in message
