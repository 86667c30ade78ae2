"""A worker reading a topic written in transactions: no phantom lag from commit markers."""

from __future__ import annotations

import json
import time

import pytest

from pipeline.kafka.aiokafka.probe import run_sync
from pipeline.kafka.connect import connect
from pipeline.ops.topics import ensure_topics
from tests.integration.harness import Harness, keyed_events
from tests.integration.processors import CHAINED_TOPICS, FINAL
from tests.replicas import poll_until
from tests.support import read_all, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STALL_S = 3


def group_lag(harness: Harness, processor: str) -> int:
    result = run_cli(
        "lag", "--processor", processor, "--json", "--interval", "0.1", env=harness.env
    )
    assert result.returncode == 0, result.stderr
    return int(json.loads(result.stdout.splitlines()[-1])["lag"])


def test_two_chained_exactly_once_processors_idle_healthy_ready_with_no_lag(
    harness: Harness,
) -> None:
    run_sync(
        ensure_topics(
            connect(harness.settings),
            [s.with_name(harness.prefix + s.name) for s in CHAINED_TOPICS],
        )
    )
    stall = ["--liveness-stall", str(STALL_S)]
    first = harness.start("passthrough_eos", "first", *stall)
    second = harness.start("relay_eos", "second", *stall)
    first.wait_ready()
    second.wait_ready()
    ids = harness.publish(keyed_events(600, keys=60))
    final = harness.prefix + FINAL.name
    poll_until(
        lambda: (
            len(run_sync(read_all(connect(harness.settings), final, committed_only=True)))
            >= len(ids)
        ),
        120,
        interval_s=1,
        what="every event through both hops",
    )
    # Every output partition of the first hop ends in a commit marker the
    # second hop is never handed: it must count it as done, or show lag 1 there.
    poll_until(lambda: group_lag(harness, "relay_eos") == 0, 30, what="the second hop's lag at 0")
    assert group_lag(harness, "passthrough_eos") == 0
    idle_until = time.monotonic() + 3 * STALL_S
    while time.monotonic() < idle_until:  # idle well past the liveness stall
        for replica in (first, second):
            status, reason = replica.get("/healthz")
            assert status == 200, f"{replica.replica_id} unhealthy while idle: {reason}"
            assert replica.get("/readyz")[0] == 200
        time.sleep(0.5)
    assert group_lag(harness, "relay_eos") == 0
    assert first.stop() == 0 and second.stop() == 0
