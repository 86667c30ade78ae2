"""The runtime's promises under random conditions, on the in-memory broker (hypothesis).

Random partition counts, keys, batch sizes, lanes and in-flight bounds;
handlers that are slow, fail once or fail for good; replicas that join and
leave, rebalances, produce and commit failures, at random points. Whatever
happens, three things hold:

- nothing is committed past a record that has not ended as an output or a
  dead letter (checked at every commit, as it happens);
- every input ends as an output or a dead letter (outputs may repeat after
  a rebalance: at least once);
- each key's outputs, first occurrences, come in the order of its inputs.

An output the broker does not acknowledge stops its replica (exit 4, the
documented policy), which is started again here as an orchestrator would.

HYPOTHESIS_PROFILE=thorough runs 400 examples instead of the suite's 25.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from pipeline.kafka.memory import MemoryBroker, MemoryClients
from pipeline.kafka.port import TopicPartition
from pipeline.processor import Context, PermanentError, Processor
from pipeline.publishing.producer import EventProducer
from pipeline.resilience.retry import RetryPolicy
from pipeline.runtime.worker import EXIT_FAILED, EXIT_OK, Runtime
from tests.unit.runtime.support import (
    OUTPUT,
    SOURCE,
    Done,
    Step,
    all_committed,
    dead_source_offsets,
    new_broker,
    start_replica,
    values,
)
from tests.unit.runtime.support import (
    settings as pipeline_settings,
)

settings.register_profile(
    "suite", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "suite")
ACTIONS = ("join", "leave", "rebalance", "produce_fails", "commit_fails")
GROUP = "props"


@dataclass
class Scenario:
    partitions: int
    keys: int
    modes: list[str]
    lanes: int
    batch_records: int
    max_in_flight: int
    actions: list[tuple[int, str]]
    """(outputs seen before it fires, what happens)"""


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    count = draw(st.integers(1, 160))
    batch_records = draw(st.integers(1, 64))
    return Scenario(
        partitions=draw(st.integers(1, 4)),
        keys=draw(st.integers(1, 12)),
        modes=draw(
            st.lists(
                st.sampled_from(["", "", "", "", "slow", "flaky", "permanent"]),
                min_size=count,
                max_size=count,
            )
        ),
        lanes=draw(st.integers(1, 4)),
        batch_records=batch_records,
        max_in_flight=draw(st.integers(batch_records, 400)),
        actions=sorted(
            draw(st.lists(st.tuples(st.integers(0, count), st.sampled_from(ACTIONS)), max_size=4))
        ),
    )


@dataclass
class Replicas:
    broker: MemoryBroker
    processor: Processor[Step]
    cache_dir: Path
    running: list[tuple[Runtime, asyncio.Future[int]]] = field(default_factory=list)
    started: int = 0
    exit_codes: list[int] = field(default_factory=list)

    async def add(self) -> None:
        self.started += 1
        self.running.append(
            await start_replica(self.broker, self.processor, f"r{self.started}", self.cache_dir)
        )

    async def remove_newest(self) -> None:
        runtime, run = self.running.pop()
        runtime.request_stop()
        self.exit_codes.append(await run)

    async def replace_failed(self) -> None:
        """What an orchestrator does: a replica that exited is started again."""
        for runtime, run in list(self.running):
            if run.done():
                self.running.remove((runtime, run))
                self.exit_codes.append(run.result())
                await self.add()

    async def until(self, condition: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
        """Poll `condition`, restarting replicas that exited, until it holds or time is up.

        The limits only catch a hang: an example takes well under a second
        unless the machine is starved of CPU.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            await self.replace_failed()
            if condition():
                return
            assert time.monotonic() < deadline, f"waited {timeout_s:g}s for {what}"
            await asyncio.sleep(0.005)

    async def stop_all(self) -> None:
        while self.running:
            await self.remove_newest()


class Invariants:
    """Checks every commit as it happens: all it covers has ended as an output or a dead letter."""

    def __init__(self, broker: MemoryBroker, sources: dict[tuple[int, int], int]) -> None:
        self.broker = broker
        self.sources = sources
        """(partition, offset) → the input's n"""
        self.violations: list[str] = []
        group = broker.group(GROUP)
        commit = group.commit

        def checked(offsets: dict[TopicPartition, int], metadata: str) -> None:
            self.check(offsets)
            commit(offsets, metadata)

        group.commit = checked  # type: ignore[method-assign]

    def ended(self) -> tuple[set[int], set[tuple[int, int]]]:
        outputs = {int(str(fields["n"])) for _, _, fields in values(self.broker, OUTPUT.name)}
        return outputs, dead_source_offsets(self.broker, SOURCE.name)

    def check(self, offsets: dict[TopicPartition, int]) -> None:
        outputs, dead = self.ended()
        for tp, committed in offsets.items():
            for offset in range(committed):
                where = (tp.partition, offset)
                if self.sources[where] not in outputs and where not in dead:
                    self.violations.append(
                        f"commit {committed} on partition {tp.partition} passes offset {offset}, "
                        "which has neither an output nor a dead letter"
                    )
                    return


async def run(scenario: Scenario, cache_dir: Path) -> None:
    source = dataclasses.replace(SOURCE, partitions=scenario.partitions)
    broker = new_broker(source)
    tries: dict[int, int] = {}

    async def handle(step: Step, ctx: Context) -> Done:
        tries[step.n] = tries.get(step.n, 0) + 1
        if step.mode == "slow":
            await asyncio.sleep(0.001)
        elif step.mode == "flaky" and tries[step.n] == 1:
            raise ConnectionResetError(f"step {step.n}: the first try fails")
        elif step.mode == "permanent":
            raise PermanentError(f"step {step.n} never succeeds")
        return Done(key=step.key, n=step.n)

    processor = Processor(
        GROUP,
        source,
        handle,
        outputs=(OUTPUT,),
        lanes=scenario.lanes,
        batch_records=scenario.batch_records,
        retry=RetryPolicy(attempts=3, base_delay_s=0.0005, max_delay_s=0.002),
    )
    inputs = [
        Step(key=f"k{n % scenario.keys}", n=n, mode=mode) for n, mode in enumerate(scenario.modes)
    ]
    async with EventProducer(pipeline_settings(), clients=MemoryClients(broker)) as producer:
        deliveries = await producer.publish_many(source, inputs)
    sources = {(d.partition, d.offset): step.n for d, step in zip(deliveries, inputs, strict=True)}
    invariants = Invariants(broker, sources)

    replicas = Replicas(broker, processor, cache_dir)
    await replicas.add()
    try:
        for threshold, action in scenario.actions:
            await replicas.until(
                lambda t=threshold: (
                    len(values(broker, OUTPUT.name))  # type: ignore[misc]
                    + len(dead_source_offsets(broker, SOURCE.name))
                    >= t
                    or all_committed(broker, GROUP)
                ),
                f"{threshold} outputs before {action}",
            )
            if action == "join" and len(replicas.running) < 3:
                await replicas.add()
            elif action == "leave" and len(replicas.running) > 1:
                await replicas.remove_newest()
            elif action == "rebalance":
                broker.spawn(broker.rebalance(GROUP))
            elif action == "produce_fails":
                broker.fail("produce", times=2, topic=OUTPUT.name)
            elif action == "commit_fails":
                broker.fail("commit", times=2)

        await replicas.until(lambda: all_committed(broker, GROUP), "everything committed", 120)
    finally:
        await replicas.stop_all()

    assert not invariants.violations, invariants.violations[0]
    outputs, dead = invariants.ended()
    for (partition, offset), n in sources.items():
        expected_dead = scenario.modes[n] == "permanent"
        assert ((partition, offset) in dead) == expected_dead, f"input {n} ({scenario.modes[n]})"
        assert expected_dead or n in outputs, f"input {n} has no output"
    by_key: dict[str, list[int]] = {}
    for _, _, fields in values(broker, OUTPUT.name):
        by_key.setdefault(str(fields["key"]), []).append(int(str(fields["n"])))
    for key, ns in by_key.items():
        firsts = list(dict.fromkeys(ns))
        assert firsts == sorted(firsts), f"key {key}: outputs out of order: {ns}"
    # An output the broker does not acknowledge stops the replica (exit 4, to be
    # restarted; nothing of it is committed): only injected produce failures may.
    produce_failures = 2 * sum(action == "produce_fails" for _, action in scenario.actions)
    failed = [code for code in replicas.exit_codes if code != EXIT_OK]
    assert set(failed) <= {EXIT_FAILED} and len(failed) <= produce_failures, replicas.exit_codes


@settings(settings.get_profile(PROFILE))
@given(scenarios())
def test_commits_outputs_and_order_hold_whatever_happens(scenario: Scenario) -> None:
    note(repr(scenario))
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(run(scenario, Path(folder)))
