"""Queue mode (Processor(delivery="queue")) on the in-memory share groups, through TestPipeline.

The same runtime a `pipeline worker` replica of a queue-mode processor runs
(pipeline.runtime.queue_worker), with the broker swapped for
pipeline.kafka.memory, whose share groups the contract suite keeps honest
against Kafka 4.4 (tests/contract/test_share_port.py).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.kafka.aiokafka.clients import AioClients
from pipeline.kafka.memory.share_groups import MemoryShareConsumer
from pipeline.kafka.port import ShareGroupsUnsupported, ShareOptions
from pipeline.metric_names import QUEUE_OUTCOMES
from pipeline.processor import Context, PermanentError, Processor
from pipeline.queue_delivery import handler_deadline, share_group_configs
from pipeline.queue_policy import MAX_DELIVERY_LIMIT, QueuePolicy
from pipeline.resilience.retry import RetryPolicy
from pipeline.runtime.queue_slot import LockClock
from pipeline.runtime.queue_worker import QueueRuntime
from pipeline.runtime.worker import WorkerOptions
from pipeline.settings import PipelineSettings
from pipeline.stores.store_spec import Store
from pipeline.testing import TestPipeline
from tests.unit.runtime.support import OUTPUT, SOURCE, Done, Step

FAST = RetryPolicy(attempts=3, base_delay_s=0.001, max_delay_s=0.005)


def queued(handler: Callable[..., object], **fields: object) -> Processor[Step]:
    declared: dict[str, object] = {"outputs": (OUTPUT,), "retry": FAST, "delivery": "queue"}
    return Processor("mail", SOURCE, handler, **{**declared, **fields})  # type: ignore[arg-type]


def outcomes(pipeline: TestPipeline[Step]) -> dict[str, float]:
    counted = pipeline.metrics.by_label(QUEUE_OUTCOMES, "outcome")
    return {outcome: counted.get(outcome, 0.0) for outcome in ("accept", "release", "reject")}


async def test_each_record_is_handled_once_and_accepted() -> None:
    async def handle(step: Step, ctx: Context) -> Done:
        return Done(key=step.key, n=step.n)

    async with TestPipeline(queued(handle, queue=QueuePolicy(slots=3)), keep_retry=True) as run:
        await run.publish(SOURCE, [Step(key=f"k{n % 7}", n=n) for n in range(200)])
        await run.processed()
        assert sorted(done.n for done in run.outputs(OUTPUT)) == list(range(200))
        assert outcomes(run) == {"accept": 200, "release": 0, "reject": 0}
        assert run.dead_letters() == []


async def test_a_failing_record_is_released_and_its_attempt_is_its_delivery() -> None:
    attempts_seen: dict[int, list[int]] = collections.defaultdict(list)

    async def flaky(step: Step, ctx: Context) -> Done:
        attempts_seen[step.n].append(ctx.attempt)
        if step.mode == "flaky" and ctx.attempt < 3:
            raise ConnectionResetError(f"step {step.n} fails on attempt {ctx.attempt}")
        return Done(key=step.key, n=step.n)

    processor = queued(flaky, retry=RetryPolicy(attempts=4, base_delay_s=0.001))
    async with TestPipeline(processor, keep_retry=True) as run:
        steps = [Step(key="a", n=n, mode="flaky" if n % 5 == 0 else "") for n in range(20)]
        await run.publish(SOURCE, steps)
        await run.processed()
        assert sorted(done.n for done in run.outputs(OUTPUT)) == list(range(20))
        assert all(attempts_seen[n] == [1, 2, 3] for n in range(0, 20, 5)), attempts_seen
        assert all(attempts_seen[n] == [1] for n in range(20) if n % 5), attempts_seen
        assert outcomes(run) == {"accept": 20, "release": 8, "reject": 0}


async def test_the_last_attempt_and_a_permanent_failure_are_dead_lettered_and_rejected() -> None:
    handled: list[int] = []

    async def failing(step: Step, ctx: Context) -> Done:
        handled.append(step.n)
        if step.mode == "permanent":
            raise PermanentError(f"step {step.n} can never succeed")
        if step.mode == "broken":
            raise ValueError(f"step {step.n} is broken")
        return Done(key=step.key, n=step.n)

    async with TestPipeline(queued(failing), keep_retry=True) as run:
        await run.publish(
            SOURCE, [Step(key="a", n=0, mode="permanent"), Step(key="b", n=1, mode="broken")]
        )
        await run.processed()
        letters = {letter.error_type: letter for letter in run.dead_letters()}
        assert set(letters) == {"PermanentError", "ValueError"}
        assert letters["PermanentError"].attempts == 1
        assert letters["ValueError"].attempts == FAST.attempts
        assert "step 1 is broken" in letters["ValueError"].error_message
        assert handled.count(0) == 1 and handled.count(1) == FAST.attempts
        assert outcomes(run) == {"accept": 0, "release": 2, "reject": 2}
        assert run.outputs(OUTPUT) == []


async def test_a_record_no_delivery_finished_is_dead_lettered_without_running() -> None:
    """Its earlier members vanished with it in hand (as a killed replica does): at the
    group's last allowed delivery the replica keeps it in the DLQ instead of running it,
    so the broker never archives it unseen."""
    ran: list[int] = []

    async def handle(step: Step, ctx: Context) -> Done:
        ran.append(step.n)
        return Done(key=step.key, n=step.n)

    processor = queued(handle)
    pipeline = TestPipeline(processor, keep_retry=True)
    await pipeline.publish(SOURCE, Step(key="a", n=7))
    pipeline.broker.group_configs[processor.group_id] = dict(share_group_configs(processor))
    for _ in range(MAX_DELIVERY_LIMIT - 1):  # each one takes it and dies without an outcome
        vanished = MemoryShareConsumer(pipeline.broker, ShareOptions(processor.group_id))
        await vanished.start()
        await vanished.subscribe([SOURCE.name])
        assert len(await vanished.poll(1.0)) == 1
        await vanished.stop()
    async with pipeline as run:
        await run.processed()
        [letter] = run.dead_letters()
        assert letter.error_type == "DeliveryLimitReached"
        assert f"delivered {MAX_DELIVERY_LIMIT - 1} times" in letter.error_message
        assert ran == []
        assert outcomes(run)["reject"] == 1


async def test_a_slow_record_holds_up_only_its_own_slot() -> None:
    let_go = asyncio.Event()
    done_meanwhile: list[int] = []

    async def handle(step: Step, ctx: Context) -> Done:
        if step.mode == "slow":
            await let_go.wait()
        else:
            done_meanwhile.append(step.n)
        return Done(key=step.key, n=step.n)

    async with TestPipeline(queued(handle, queue=QueuePolicy(slots=2))) as run:
        # One key, one partition: a stream would keep all of them behind the slow one.
        await run.publish(SOURCE, [Step(key="a", n=0, mode="slow")])
        await run.publish(SOURCE, [Step(key="a", n=n) for n in range(1, 50)])
        for _ in range(400):
            if len(done_meanwhile) == 49:
                break
            await asyncio.sleep(0.01)
        assert sorted(done_meanwhile) == list(range(1, 50))
        let_go.set()
        await run.processed()
        assert len(run.outputs(OUTPUT)) == 50


async def test_a_call_past_the_deadline_is_released_and_tried_again() -> None:
    calls: list[int] = []

    async def hangs_once(step: Step, ctx: Context) -> Done:
        calls.append(ctx.attempt)
        if ctx.attempt == 1:
            await asyncio.Event().wait()
        return Done(key=step.key, n=step.n)

    async with TestPipeline(queued(hangs_once, handler_timeout_s=0.1), keep_retry=True) as run:
        await run.publish(SOURCE, Step(key="a", n=1))
        await run.processed()
        assert calls == [1, 2]
        assert outcomes(run) == {"accept": 1, "release": 1, "reject": 0}


def test_the_handler_deadline_stays_under_the_record_lock() -> None:
    async def handle(step: Step, ctx: Context) -> None:
        return None

    assert handler_deadline(queued(handle, handler_timeout_s=None)) == 25.0
    assert handler_deadline(queued(handle, handler_timeout_s=60.0)) == 25.0
    assert handler_deadline(queued(handle, handler_timeout_s=3.0)) == 3.0
    longer = queued(handle, handler_timeout_s=None, queue=QueuePolicy(record_lock_s=60))
    assert handler_deadline(longer) == 55.0
    stream = Processor("s", SOURCE, handle, handler_timeout_s=None)
    assert handler_deadline(stream) is None
    assert share_group_configs(longer) == {
        "share.auto.offset.reset": "earliest",
        "share.record.lock.duration.ms": "60000",
        "share.delivery.count.limit": str(MAX_DELIVERY_LIMIT),
    }


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"exactly_once": True}, "cannot be exactly_once"),
        ({"stores": (Store("seen"),)}, "cannot keep stores"),
        ({"lanes": 4}, "lanes=4"),
        ({"retry": RetryPolicy(attempts=10)}, "RetryPolicy(attempts=9)"),
        ({"delivery": "fifo"}, "delivery must be 'stream' or 'queue'"),
    ],
)
def test_what_a_queue_cannot_keep_is_refused_at_declaration(
    fields: dict[str, object], says: str
) -> None:
    async def handle(step: Step, ctx: Context) -> None:
        return None

    with pytest.raises(ConfigError) as refused:
        queued(handle, **fields)
    assert says in str(refused.value)


@pytest.mark.parametrize(
    ("policy", "says"), [({"slots": 0}, "slots"), ({"record_lock_s": 5}, "15")]
)
def test_a_queue_policy_out_of_bounds_is_refused(policy: dict[str, float], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        QueuePolicy(**policy)  # type: ignore[arg-type]


async def test_aiokafka_is_refused_before_anything_is_opened(tmp_path: Path) -> None:
    async def handle(step: Step, ctx: Context) -> None:
        return None

    settings = PipelineSettings(bootstrap_servers="127.0.0.1:9")  # nothing listens there
    with pytest.raises(ShareGroupsUnsupported, match="confluent"):
        await QueueRuntime.open(
            settings,
            queued(handle),
            WorkerOptions(replica_id="r1", handle_signals=False, cache_dir=tmp_path),
            AioClients(settings),
        )


def test_a_record_is_started_only_with_its_lock_margin_and_two_typical_records_left() -> None:
    """librdkafka can acquire a whole record batch in one poll: a slot starts the next of
    them only while its lock leaves the margin and room for two records of typical length."""
    clock = LockClock(lock_s=15.0)
    assert clock.room_for_one(acquired_at=0.0, now=9.9)  # 5.1 s left, nothing measured yet
    assert not clock.room_for_one(acquired_at=0.0, now=10.0)
    clock.took(1.0)
    assert clock.room_for_one(0.0, 7.9) and not clock.room_for_one(0.0, 8.0)
    for _ in range(50):
        clock.took(0.01)
    assert 0.01 <= clock.typical_s < 0.02
    assert clock.room_for_one(0.0, 9.9)
