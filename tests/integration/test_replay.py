"""Replays, DLQ redrive and offset resets against the real broker and real processes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from pipeline.kafka.aiokafka.probe import run_sync
from pipeline.kafka.connect import connect
from pipeline.paths import project_dir
from pipeline.reading.offsets import committed_offsets
from pipeline.scaling.worker_process import PIPELINE
from pipeline.wire.codec import encode_events
from tests.integration.harness import Harness, keyed_events
from tests.integration.processors import PROCESSORS, SOURCE, Keyed
from tests.replicas import poll_until
from tests.support import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def publish_at_times(harness: Harness, events: list[Keyed], times_ms: list[int]) -> list[str]:
    """Publish with explicit record timestamps (as an upstream replaying history would)."""
    encoded = encode_events(harness.source, events)

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=harness.settings.bootstrap_servers)
        await producer.start()
        try:
            futures = [
                await producer.send(
                    harness.source.name,
                    value=item.value,
                    key=item.key,
                    headers=item.headers,
                    timestamp_ms=stamp,
                )
                for item, stamp in zip(encoded, times_ms, strict=True)
            ]
            for future in futures:
                await future
        finally:
            await producer.stop()

    run_sync(run())
    return [item.event_id for item in encoded]


def iso(moment_ms: int) -> str:
    return datetime.fromtimestamp(moment_ms / 1000, UTC).isoformat()


def replay_cli(harness: Harness, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("replay", *args, env=harness.env, timeout=300)


@pytest.mark.both_clients
def test_a_replay_of_a_time_window_processes_exactly_that_window(harness: Harness) -> None:
    origin = int((datetime.now(UTC) - timedelta(hours=1)).timestamp() * 1000)
    events = keyed_events(2000, keys=97)
    stamps = [origin + i * 50 for i in range(len(events))]  # 100 s of history
    ids = publish_at_times(harness, events, stamps)
    window = (origin + 20_000, origin + 60_000)
    expected = {i for i, t in zip(ids, stamps, strict=True) if window[0] <= t < window[1]}

    result = replay_cli(
        harness, "--processor", "passthrough", "--from", iso(window[0]), "--to", iso(window[1])
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "replay finished" in result.stderr
    seen = Counter(event.source_id for _, _, event in harness.outputs())
    assert set(seen) == expected
    assert max(seen.values()) == 1
    # The live group was never touched.
    assert not run_sync(
        committed_offsets(
            connect(harness.settings), harness.prefix + "passthrough", harness.source.name
        )
    )


@pytest.mark.both_clients
@pytest.mark.long
def test_an_interrupted_replay_resumes_with_no_gap(harness: Harness, tmp_path: Path) -> None:
    ids = harness.publish(keyed_events(20_000, keys=500))
    command = [
        PIPELINE,
        "replay",
        "--processor",
        "passthrough",
        "--name",
        "resume-test",
        "--rate",
        "4000",
    ]
    first = subprocess.Popen(
        command,
        cwd=project_dir(),
        env={**os.environ, **harness.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    poll_until(lambda: harness.count(harness.output.name) > 3000, 60, what="some progress")
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 130, err[-3000:]
    assert "run the same command again to resume" in err
    done_before = harness.count(harness.output.name)
    assert done_before < len(ids), "the replay finished before it was interrupted"

    second = subprocess.run(
        command,
        cwd=project_dir(),
        env={**os.environ, **harness.env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming replay resume-test" in second.stderr
    seen = Counter(event.source_id for _, _, event in harness.outputs())
    assert set(seen) == set(ids), "a gap: some events were never processed"
    duplicates = sum(n - 1 for n in seen.values())
    bound = SOURCE.partitions * PROCESSORS["passthrough"].queue_records
    assert duplicates <= bound
    print(f"{done_before} done before SIGINT; {duplicates} duplicates (bound {bound})")


@pytest.mark.both_clients
@pytest.mark.long  # on confluent in `make test-confluent`; the time-window replay runs in both
def test_a_copy_replay_keeps_keys_values_headers_and_times(harness: Harness) -> None:
    origin = int((datetime.now(UTC) - timedelta(minutes=30)).timestamp() * 1000)
    events = keyed_events(300, keys=30)
    publish_at_times(harness, events, [origin + i for i in range(300)])
    target = harness.output.name  # any topic will do; nothing else writes to it here
    result = replay_cli(harness, "--topic", harness.source.name, "--into-topic", target)
    assert result.returncode == 0, result.stderr[-3000:]
    from tests.support import read_all

    copied = run_sync(read_all(connect(harness.settings), target))
    originals = run_sync(read_all(connect(harness.settings), harness.source.name))

    def key(r):  # type: ignore[no-untyped-def]
        return (r.key, r.value, tuple(r.headers), r.timestamp)

    assert sorted(map(key, copied)) == sorted(map(key, originals))


@pytest.mark.both_clients
@pytest.mark.long
def test_handler_bug_dead_letters_and_redrive_brings_every_event_back_once(
    harness: Harness, tmp_path: Path
) -> None:
    marker = tmp_path / "bug"
    marker.write_text("on")
    harness.env["RUNTIME_BUG_FILE"] = str(marker)
    replica = harness.start("buggy", "r0")
    replica.wait_ready()
    good = keyed_events(500, keys=50)
    bad = [Keyed(key=f"b{i % 7}", seq=i, mode="bug") for i in range(40)]
    ids = harness.publish(good + bad)
    harness.wait_outputs(len(ids))
    assert harness.count(harness.dlq) == 40

    inspected = run_cli("dlq", "inspect", "--topic", harness.dlq, "--json", env=harness.env)
    assert inspected.returncode == 0, inspected.stderr
    summary = json.loads(inspected.stdout)
    assert summary["total"] == 40
    assert summary["by_cause"] == [{"error_type": "ValueError", "processor": "buggy", "count": 40}]
    assert summary["samples"][0]["headers"]["dlq-source-topic"] == harness.source.name

    marker.unlink()  # the bug is fixed
    dry = run_cli("dlq", "redrive", "--topic", harness.dlq, "--dry-run", env=harness.env)
    assert dry.returncode == 0 and f"would redrive 40 to {harness.source.name}" in dry.stderr
    assert harness.count(harness.source.name) == len(ids), "a dry run published something"
    first = run_cli("dlq", "redrive", "--topic", harness.dlq, env=harness.env)
    assert first.returncode == 0, first.stderr
    assert "redrove 40 record(s)" in first.stderr
    poll_until(
        lambda: harness.count(harness.output.name) >= len(good) + len(bad), 60, what="redriven"
    )
    seen = Counter(event.source_id for _, _, event in harness.outputs())
    assert set(seen) == set(ids)
    again = run_cli("dlq", "redrive", "--topic", harness.dlq, env=harness.env)
    assert again.returncode == 0 and "redrove 0 record(s)" in again.stderr
    assert harness.count(harness.dlq) == 40, "the DLQ must keep its records"


def test_bad_input_gets_a_clear_error_and_changes_nothing(harness: Harness) -> None:
    harness.publish(keyed_events(100))
    before = harness.count(harness.output.name)

    def fails(result: subprocess.CompletedProcess[str], says: str) -> None:
        assert result.returncode != 0
        assert says in result.stderr, result.stderr[-2000:]

    fails(
        replay_cli(
            harness,
            "--processor",
            "passthrough",
            "--from",
            "2026-11-02T00:00Z",
            "--to",
            "2026-11-01T00:00Z",
        ),
        "is not before --to",
    )
    fails(replay_cli(harness, "--topic", "no.such.topic", "--into-topic", "x"), "does not exist")
    fails(
        replay_cli(
            harness,
            "--processor",
            "passthrough",
            "--from",
            "2020-01-01T00:00Z",
            "--to",
            "2020-01-02T00:00Z",
        ),
        "no records",
    )
    fails(run_cli("lag", "--group", "no-such-group", env=harness.env), "name one with --topic")
    assert harness.count(harness.output.name) == before

    # A DLQ record that does not say where it came from: nothing is redriven.
    async def raw_dlq_record() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=harness.settings.bootstrap_servers)
        await producer.start()
        try:
            await producer.send_and_wait(harness.dlq, b"orphan", key=b"k")
        finally:
            await producer.stop()

    run_sync(raw_dlq_record())
    fails(
        run_cli("dlq", "redrive", "--topic", harness.dlq, env=harness.env),
        "cannot be redriven as they were",
    )
    assert harness.count(harness.source.name) == 100
    group = f"dlq-redrive.{harness.dlq}"
    assert run_sync(committed_offsets(connect(harness.settings), group, harness.dlq)) == {}


def test_offsets_reset_shows_the_change_and_refuses_while_members_are_active(
    harness: Harness,
) -> None:
    harness.publish(keyed_events(600))
    replica = harness.start("passthrough", "r0")
    replica.wait_ready()
    harness.wait_outputs(600)
    group = harness.prefix + "passthrough"
    poll_until(
        lambda: (
            sum(
                run_sync(
                    committed_offsets(connect(harness.settings), group, harness.source.name)
                ).values()
            )
            == 600
        ),
        30,
        what="commits",
    )
    args = ["offsets", "reset", "--group", group, "--topic", harness.source.name]
    refused = run_cli(*args, "--to-earliest", env=harness.env)
    assert refused.returncode != 0 and "active member" in refused.stderr
    assert replica.stop() == 0

    dry = run_cli(*args, "--shift-by", "-10", "--dry-run", env=harness.env)
    assert dry.returncode == 0 and "nothing changed" in dry.stderr
    assert "-10" in dry.stdout
    committed = run_sync(committed_offsets(connect(harness.settings), group, harness.source.name))
    assert sum(committed.values()) == 600

    done = run_cli(*args, "--to-earliest", env=harness.env)
    assert done.returncode == 0, done.stderr
    committed = run_sync(committed_offsets(connect(harness.settings), group, harness.source.name))
    assert set(committed.values()) == {0}


@pytest.mark.both_clients
@pytest.mark.long
def test_fresh_backfills_of_a_large_backlog_finish_with_every_record_once(
    harness: Harness,
) -> None:
    """240k records on 12 partitions: large enough that a seek racing the first fetch shows.

    Three fresh replays (new names, new groups) in a row; each must finish
    and output every record exactly once.
    """
    total = 240_000
    ids = harness.publish(keyed_events(total, keys=5000))
    for run in range(3):
        before = harness.count(harness.output.name)
        result = replay_cli(
            harness, "--processor", "passthrough", "--from", "0", "--name", f"bf{run}"
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert "replay finished" in result.stderr
        # The report's row: read, processed, dead-lettered, outside the range, time.
        row = rf"{total:,}\D+{total:,}\D+0\D+0\D"
        assert re.search(row, result.stdout), result.stdout
        assert harness.count(harness.output.name) - before == total, f"run {run}"
    seen = Counter(event.source_id for _, _, event in harness.outputs())
    assert set(seen) == set(ids)
    assert set(seen.values()) == {3}, "a record was processed more or less than once per run"
