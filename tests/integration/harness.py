"""The runtime tests' harness: unique topics, worker replicas, publishing and reading back."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.kafka.aiokafka.probe import run_sync
from pipeline.kafka.connect import connect
from pipeline.ops.topics import ensure_topics
from pipeline.publishing.producer import EventProducer
from pipeline.reading.offsets import committed_offsets, end_offsets
from pipeline.settings import PipelineSettings
from pipeline.wire.codec import decode_value
from tests.integration.processors import OUTPUT, SOURCE, TOPICS, Handled, Keyed
from tests.replicas import Replica, poll_until
from tests.support import read_all


class Harness:
    def __init__(self, settings: PipelineSettings, prefix: str, log_dir: Path) -> None:
        self.settings = settings
        self.prefix = prefix
        self.log_dir = log_dir
        self.source = SOURCE.with_name(prefix + SOURCE.name)
        self.output = OUTPUT.with_name(prefix + OUTPUT.name)
        self.dlq = prefix + SOURCE.dlq_name
        self.env = {
            "PIPELINE_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "PIPELINE_TOPIC_PREFIX": prefix,
            "PIPELINE_PROCESSORS_MODULE": "tests.integration.processors",
        }
        self.replicas: list[Replica] = []

    def start(self, processor: str, replica_id: str, *extra: str) -> Replica:
        replica = Replica(processor, replica_id, self.env, self.log_dir, *extra)
        self.replicas.append(replica)
        return replica

    def publish(self, events: list[Keyed]) -> list[str]:
        async def run() -> list[str]:
            async with EventProducer(self.settings) as producer:
                ids: list[str] = []
                for start in range(0, len(events), 5000):
                    deliveries = await producer.publish_many(
                        self.source, events[start : start + 5000]
                    )
                    ids.extend(d.event_id for d in deliveries)
                return ids

        return run_sync(run())

    def count(self, topic: str) -> int:
        return sum(run_sync(end_offsets(connect(self.settings), topic)).values())

    def wait_outputs(self, expected: int, timeout_s: float = 240) -> None:
        try:
            poll_until(
                lambda: self.count(self.output.name) + self.count(self.dlq) >= expected,
                timeout_s,
                what=f"{expected} outputs",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.diagnosis()}") from None

    def drained(self, processor: str) -> bool:
        """Whether the processor's group has committed every record of the source."""
        ends = run_sync(end_offsets(connect(self.settings), self.source.name))
        committed = run_sync(
            committed_offsets(connect(self.settings), self.prefix + processor, self.source.name)
        )
        return all(committed.get(partition, 0) >= end for partition, end in ends.items())

    def wait_drained(self, processor: str, timeout_s: float = 240) -> None:
        """Until the group committed everything: output counts alone can include duplicates."""
        try:
            poll_until(
                lambda: self.drained(processor),
                timeout_s,
                what=f"{processor} to commit the source's end",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.diagnosis(processor)}") from None

    def diagnosis(self, processor: str = "passthrough") -> str:
        """What a stalled wait needs to be debugged from CI output alone: where each
        partition stands and what every replica last logged."""
        ends = run_sync(end_offsets(connect(self.settings), self.source.name))
        committed = run_sync(
            committed_offsets(connect(self.settings), self.prefix + processor, self.source.name)
        )
        lines = [
            f"source ends {dict(sorted(ends.items()))}",
            f"{processor} commits {dict(sorted(committed.items()))}",
            f"outputs {self.count(self.output.name)}, dead letters {self.count(self.dlq)}",
        ]
        for replica in self.replicas:
            code = replica.process.poll()
            state = "running" if code is None else f"exit {code}"
            lines.append(f"--- {replica.replica_id} ({state}), last lines of its log:")
            lines.append(replica.tail(40))
        return "\n".join(lines)

    def outputs(self) -> list[tuple[int, int, Handled]]:
        records = run_sync(read_all(connect(self.settings), self.output.name))
        return [(r.partition, r.offset, decode_value(self.output, r.value)) for r in records]  # type: ignore[misc]

    def stop_all(self) -> None:
        for replica in self.replicas:
            if replica.process.poll() is None:
                replica.signal(signal.SIGKILL)
                replica.wait()


@pytest.fixture
def harness(settings: PipelineSettings, unique: str, tmp_path: Path) -> Iterator[Harness]:
    run_sync(
        ensure_topics(connect(settings), [spec.with_name(unique + spec.name) for spec in TOPICS])
    )
    harness = Harness(settings, unique, tmp_path)
    try:
        yield harness
    finally:
        harness.stop_all()


def keyed_events(count: int, keys: int = 1000, **fields: str) -> list[Keyed]:
    return [
        Keyed(key=f"k{i % keys}", seq=i // keys, payload="p" * 60, **fields) for i in range(count)
    ]


def run_until_settled(
    settings: PipelineSettings,
    processor: str,
    topics: tuple[str, str],
    expected: tuple[int, int],
    log_dir: Path,
    prefix: str,
    **env: str,
) -> None:
    """One replica of `processor` until (outputs, dead letters) on `topics` reach `expected`.

    Then SIGTERM, and it must exit 0. `env` adds settings (the registry's URL).
    """
    clients = connect(settings)
    replica = Replica(
        processor,
        f"{processor}-1",
        {
            "PIPELINE_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "PIPELINE_TOPIC_PREFIX": prefix,
            "PIPELINE_PROCESSORS_MODULE": "tests.integration.processors",
            **env,
        },
        log_dir,
    )
    try:
        replica.wait_ready(timeout_s=120)

        def counts() -> tuple[int, ...]:
            return tuple(sum(run_sync(end_offsets(clients, t)).values()) for t in topics)

        poll_until(lambda: counts() == expected, timeout_s=120, what=f"{expected} on {topics}")
        assert replica.running, replica.tail()
    finally:
        assert replica.stop() == 0, replica.tail()
