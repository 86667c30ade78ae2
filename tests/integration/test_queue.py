"""Queue delivery on Kafka 4.4's share groups, with replicas as real processes.

20,000 records (4,000 in `make test`; `make test-full` runs both) on a
3-partition topic, 6 replicas of a queue-mode processor (2 slots each: 12
members, four times the partitions), one record in 50 failing twice before
it succeeds, one in 500 failing for good, and two replicas killed with
SIGKILL mid-stream. Every record must end accepted (its output on the
output topic) or dead-lettered with its reason, none lost; the share
group's backlog, as Kafka's own `kafka-share-groups` tool reports it, must
reach 0. Then the autoscaler: a queue on 2 partitions scales past 2
replicas under a backlog, and back down once it drained.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.catalogue import TopicSpec
from pipeline.dev.kafka_jars import java_executable, resolve_classpath
from pipeline.dev.localkafka import LocalKafka
from pipeline.kafka.aiokafka.probe import live_broker_count, run_sync
from pipeline.kafka.connect import connect
from pipeline.ops.topics import ensure_topics
from pipeline.paths import cache_dir, project_dir
from pipeline.publishing.producer import EventProducer
from pipeline.reading.offsets import end_offsets
from pipeline.scaling.worker_process import PIPELINE
from pipeline.settings import PipelineSettings
from pipeline.wire import dlq_headers as dlq
from pipeline.wire.codec import decode_value, header_value
from tests.integration.processors import (
    NARROW_QUEUE,
    QUEUE_OUTPUT,
    QUEUE_SOURCE,
    QUEUE_TOPICS,
    Keyed,
    Taken,
)
from tests.integration.test_autoscale import statuses
from tests.replicas import Replica, poll_until
from tests.support import read_all, run_cli

pytestmark = pytest.mark.integration

REPLICAS = 6
SLOTS = 2  # the mailer's QueuePolicy
ATTEMPTS = 4  # the mailer's RetryPolicy
DUPLICATES_PER_SLOT = 500
"""Generous for a second of a slot's outcomes at this machine's rate (a few ms a record)."""


def mode_of(seq: int) -> str:
    if seq % 500 == 0:
        return "doomed"
    return "flaky" if seq % 50 == 0 else ""


def released(replica: Replica) -> float:
    """The records a replica released (failed, to be delivered again)."""
    _, text = replica.get("/metrics")
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("pipeline_queue_outcomes_total{") and 'outcome="release"' in line
    )


def share_group_backlog(bootstrap: str, group: str) -> dict[int, int]:
    """Per partition, the lag Kafka's own share-group tool reports."""
    result = subprocess.run(
        [
            java_executable(),
            "-cp",
            resolve_classpath(cache_dir()),
            "org.apache.kafka.tools.consumer.group.ShareGroupCommand",
            "--bootstrap-server",
            bootstrap,
            "--describe",
            "--group",
            group,
            "--offsets",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lags: dict[int, int] = {}
    for line in result.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[0] == group and re.fullmatch(r"\d+", fields[2]):
            lags[int(fields[2])] = int(fields[4]) if fields[4].isdigit() else -1
    return lags


def queue_env(settings: PipelineSettings, unique: str) -> dict[str, str]:
    """A queue replica's settings: this test's topics, the test processors, confluent-kafka."""
    return {
        "PIPELINE_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "PIPELINE_TOPIC_PREFIX": unique,
        "PIPELINE_PROCESSORS_MODULE": "tests.integration.processors",
        "PIPELINE_CLIENT": "confluent",
    }


@dataclass(frozen=True)
class Backlog:
    """slow_mailer's topics under a test's prefix, with records waiting on its 2 partitions."""

    source: TopicSpec[Keyed]
    output: TopicSpec[Taken]
    dlq: str
    records: int


def narrow_backlog(settings: PipelineSettings, unique: str, records: int) -> Backlog:
    clients = connect(settings)
    topics = [NARROW_QUEUE, NARROW_QUEUE.dlq_spec(), QUEUE_OUTPUT]
    run_sync(ensure_topics(clients, [spec.with_name(unique + spec.name) for spec in topics]))
    source = NARROW_QUEUE.with_name(unique + NARROW_QUEUE.name)

    async def publish() -> None:
        async with EventProducer(settings) as producer:
            await producer.publish_many(source, [Keyed(key=f"k{i}", seq=i) for i in range(records)])

    run_sync(publish())
    output = QUEUE_OUTPUT.with_name(unique + QUEUE_OUTPUT.name)
    return Backlog(source, output, unique + NARROW_QUEUE.dlq_name, records)


def outputs_of(settings: PipelineSettings, backlog: Backlog) -> int:
    return sum(run_sync(end_offsets(connect(settings), backlog.output.name)).values())


def wait_share_group_drained(bootstrap: str, group: str) -> None:
    poll_until(
        lambda: (
            (lags := share_group_backlog(bootstrap, group))
            and all(lag == 0 for lag in lags.values())
        ),
        120,
        what="the share group's backlog to reach 0",
    )


def accepted_all(settings: PipelineSettings, backlog: Backlog) -> list[Taken]:
    """Every record of the backlog accepted, none dead-lettered; what was taken."""
    clients = connect(settings)
    taken: list[Taken] = [
        decode_value(backlog.output, r.value)  # type: ignore[misc]
        for r in run_sync(read_all(clients, backlog.output.name))
    ]
    missing = set(range(backlog.records)) - {t.seq for t in taken}
    assert not missing, sorted(missing)[:20]
    assert not run_sync(read_all(clients, backlog.dlq)), "a record was dead-lettered"
    return taken


@contextlib.contextmanager
def running(replicas: list[Replica]) -> Iterator[None]:
    """A failure says what each replica logged last; none is left running (or frozen)."""
    try:
        yield
    except AssertionError as exc:
        tails = "\n".join(f"--- {r.replica_id}\n{r.tail(30)}" for r in replicas)
        raise AssertionError(f"{exc}\n{tails}") from None
    finally:
        for replica in replicas:
            if replica.process.poll() is None:
                replica.signal(signal.SIGCONT)
                replica.signal(signal.SIGKILL)
                replica.wait()


@pytest.mark.parametrize(
    "records", [4_000, pytest.param(20_000, marks=pytest.mark.full_size)], ids=str
)
def test_records_through_six_replicas_two_killed_none_lost(
    settings: PipelineSettings, unique: str, tmp_path: Path, records: int
) -> None:
    clients = connect(settings)
    run_sync(ensure_topics(clients, [spec.with_name(unique + spec.name) for spec in QUEUE_TOPICS]))
    source = QUEUE_SOURCE.with_name(unique + QUEUE_SOURCE.name)
    output = QUEUE_OUTPUT.with_name(unique + QUEUE_OUTPUT.name)
    dlq_topic = unique + QUEUE_SOURCE.dlq_name
    events = [Keyed(key=f"k{i % 97}", seq=i, mode=mode_of(i)) for i in range(records)]

    async def publish() -> None:
        async with EventProducer(settings) as producer:
            for start in range(0, records, 5000):
                await producer.publish_many(source, events[start : start + 5000])

    run_sync(publish())
    env = queue_env(settings, unique)
    replicas = [Replica("mailer", f"q{n}", env, tmp_path) for n in range(REPLICAS)]
    with running(replicas):
        for replica in replicas:
            replica.wait_ready(timeout_s=120)

        def settled() -> int:
            return sum(run_sync(_ends(settings, output.name, dlq_topic)))

        poll_until(lambda: settled() >= records // 4, 180, what="a quarter of the records")
        for killed in replicas[:2]:
            killed.signal(signal.SIGKILL)
            killed.wait()
        survivors = replicas[2:]
        poll_until(lambda: settled() >= records, 300, what=f"{records} outputs and dead letters")
        wait_share_group_drained(settings.bootstrap_servers, unique + "mailer")
        releases = sum(released(replica) for replica in survivors)
        for replica in survivors:
            assert replica.stop() == 0, replica.tail()

    taken: list[Taken] = [
        decode_value(output, r.value)  # type: ignore[misc]
        for r in run_sync(read_all(clients, output.name))
    ]
    accepted = Counter(t.seq for t in taken)
    dead = {}
    for letter in run_sync(read_all(clients, dlq_topic)):
        event: Keyed = decode_value(source, letter.value)  # type: ignore[assignment]
        dead[event.seq] = (
            header_value(letter.headers, dlq.ERROR_TYPE),
            int(header_value(letter.headers, dlq.ATTEMPTS) or 0),
        )
    doomed = {seq for seq in range(records) if mode_of(seq) == "doomed"}
    # None lost: every record accepted or dead-lettered, and the doomed ones exactly dead.
    assert set(accepted) | set(dead) == set(range(records))
    assert set(dead) == doomed, sorted(set(dead) ^ doomed)[:20]
    # Attempts are deliveries, and a killed replica costs each record it held one.
    assert all(why == "ValueError" and tries >= ATTEMPTS for why, tries in dead.values()), dead
    assert not set(accepted) & doomed
    # At-least-once: what a killed replica handled and had not yet sent the outcome of is
    # redone: its slots' records in hand, and at most a second of outcomes each
    # (pipeline.runtime.queue_slot commits a poll's outcomes every second).
    duplicates = sum(count - 1 for count in accepted.values())
    print(f"{records} records: {duplicates} duplicates, {releases:.0f} releases")
    assert duplicates <= 2 * SLOTS * DUPLICATES_PER_SLOT, duplicates
    # Redeliveries counted: each flaky record was accepted at its third delivery or later.
    flaky = [t for t in taken if mode_of(t.seq) == "flaky"]
    assert flaky and all(t.attempt >= 3 for t in flaky)
    assert releases > 0


async def _ends(settings: PipelineSettings, *topics: str) -> list[int]:
    clients = connect(settings)
    return [sum((await end_offsets(clients, topic)).values()) for topic in topics]


def test_the_autoscaler_scales_a_queue_past_its_partitions_and_back_down(
    settings: PipelineSettings, unique: str, tmp_path: Path
) -> None:
    """2 partitions, so a stream stops at 2 replicas; a queue's backlog takes 4, then 1."""
    backlog = narrow_backlog(settings, unique, 1_200)
    env = queue_env(settings, unique)
    status_file = tmp_path / "status.jsonl"
    # A replica of one slot takes 50 records/s: the backlog needs 4 to drain in 6 s.
    supervisor = subprocess.Popen(
        [
            PIPELINE,
            "scale",
            "slow_mailer",
            "--min",
            "1",
            "--max",
            "4",
            "--target-drain",
            "6s",
            "--interval",
            "1s",
            "--scale-down-window",
            "6s",
            "--replica-rate",
            "50",
            "--status-file",
            str(status_file),
            "--log-dir",
            str(tmp_path / "workers"),
        ],
        cwd=project_dir(),
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "supervisor.log", "wb"),  # noqa: SIM115
    )
    try:
        poll_until(
            lambda: any(int(s["replicas"]) >= 3 for s in statuses(status_file)),  # type: ignore[call-overload]
            90,
            what="a scale-up past the 2 partitions",
        )
        poll_until(
            lambda: outputs_of(settings, backlog) >= backlog.records,
            120,
            what=f"{backlog.records} outputs",
        )
        lags = lag_tool(env, unique + "slow_mailer")
        assert lags["kind"] == "share" and lags["lag"] == 0, lags
        poll_until(
            lambda: (s := statuses(status_file)) and s[-1]["replicas"] == 1,
            90,
            what="the scale-down once the backlog drained",
        )
    except AssertionError as exc:
        log = (tmp_path / "supervisor.log").read_text()[-3000:]
        raise AssertionError(f"{exc}\n{statuses(status_file)[-5:]}\n{log}") from None
    finally:
        supervisor.terminate()
        supervisor.wait(timeout=90)
    history = statuses(status_file)
    assert max(int(s["replicas"]) for s in history) >= 3  # type: ignore[call-overload]
    assert history[-1]["lag"] == 0
    assert supervisor.returncode == 0, (tmp_path / "supervisor.log").read_text()[-3000:]


def lag_tool(env: dict[str, str], group: str) -> dict[str, object]:
    """`pipeline lag --json` for a share group named by its group alone (its topic found)."""
    result = run_cli("lag", "--group", group, "--json", "--interval", "0.3", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


@pytest.mark.full_size  # a freeze past the 15 s record lock; `make test-full` runs it
def test_a_frozen_replica_past_its_record_lock_loses_nothing_and_goes_on(
    settings: PipelineSettings, unique: str, tmp_path: Path
) -> None:
    """SIGSTOP a queue replica holding records for longer than their lock: the broker
    delivers them to the others; woken, the replica's late outcomes for records it no longer
    holds must neither lose a record nor stop it."""
    # 3 replicas of one slot at 50 records/s: about 16 s of work.
    backlog = narrow_backlog(settings, unique, 2_400)
    env = queue_env(settings, unique)
    replicas = [Replica("slow_mailer", f"f{n}", env, tmp_path) for n in range(3)]
    frozen = replicas[0]
    lock_s = 15  # slow_mailer's QueuePolicy
    with running(replicas):
        for replica in replicas:
            replica.wait_ready(timeout_s=120)
        poll_until(lambda: outputs_of(settings, backlog) >= 200, 120, what="200 before the freeze")
        frozen.signal(signal.SIGSTOP)
        at_freeze = outputs_of(settings, backlog)
        # The others go on meanwhile, and past the lock they take the frozen one's records.
        poll_until(
            lambda: outputs_of(settings, backlog) >= at_freeze + 300,
            60,
            what="progress while one is frozen",
        )
        # The fault's length, not a wait for an event: frozen until past the record lock.
        time.sleep(lock_s + 5)
        frozen.signal(signal.SIGCONT)
        poll_until(
            lambda: outputs_of(settings, backlog) >= backlog.records, 180, what="every output"
        )
        # Woken, the replica answers again (its late outcomes did not stop it).
        status, _ = frozen.get("/healthz")
        assert status == 200 and frozen.process.poll() is None, frozen.tail()
        wait_share_group_drained(settings.bootstrap_servers, unique + "slow_mailer")
        for replica in replicas:
            assert replica.stop() == 0, replica.tail()
    taken = accepted_all(settings, backlog)
    # Redelivered after the lock: taken again by another replica, at a later delivery.
    redelivered = [t for t in taken if t.attempt >= 2]
    duplicates = len(taken) - backlog.records
    print(f"frozen replica: {len(redelivered)} redelivered, {duplicates} duplicates")
    assert redelivered, "nothing the frozen replica held was delivered again"


@pytest.mark.full_size  # its own broker, stopped for 10 s; `make test-full` runs it
def test_a_queue_rides_out_its_broker_going_away_and_coming_back(
    own_broker: LocalKafka, tmp_path: Path
) -> None:
    """The share group's state lives on the broker: stopped mid-stream and started again,
    the replicas reconnect and finish, nothing lost, nothing dead-lettered."""
    state = own_broker.load_state()
    assert state is not None
    settings = PipelineSettings(bootstrap_servers=state.bootstrap)
    unique = "outage."
    backlog = narrow_backlog(settings, unique, 2_400)
    env = queue_env(settings, unique)
    replicas = [Replica("slow_mailer", f"o{n}", env, tmp_path) for n in range(3)]

    def broker_answers() -> bool:
        try:
            return live_broker_count(state.bootstrap) >= 1
        except Exception:  # noqa: BLE001 - refused while it starts
            return False

    with running(replicas):
        for replica in replicas:
            replica.wait_ready(timeout_s=120)
        poll_until(lambda: outputs_of(settings, backlog) >= 300, 120, what="300 before the outage")
        at_outage = outputs_of(settings, backlog)
        own_broker.kill_node(1, signal.SIGTERM)
        assert at_outage < backlog.records - 500, "the outage came too late to test anything"
        # The fault's length, not a wait for an event: the broker is away this long.
        time.sleep(10)
        own_broker.restart_node(1)
        poll_until(broker_answers, 60, 0.2, "the broker back")
        poll_until(
            lambda: outputs_of(settings, backlog) >= backlog.records, 240, what="every output"
        )
        wait_share_group_drained(settings.bootstrap_servers, unique + "slow_mailer")
        for replica in replicas:
            assert replica.process.poll() is None, f"{replica.replica_id} exited"
            assert replica.stop() == 0, replica.tail()
    taken = accepted_all(settings, backlog)
    print(f"broker outage: {len(taken) - backlog.records} duplicates of {backlog.records}")
