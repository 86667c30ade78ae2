"""The faults: brokers bounced, a replica frozen or cut off, retention, a blocked loop.

Each is a function of a live run (pipeline.chaos.run.ChaosRun) that strikes
while the load goes on and marks when it did; the run then lets the group
drain and judges the topics.
"""

from __future__ import annotations

import signal
import time
from typing import Any

from pipeline.chaos.checking import PARTITIONS
from pipeline.chaos.disk import disk_full, give_the_disk_back, refuse_unless_safe
from pipeline.chaos.proxy import FaultyNetwork
from pipeline.chaos.run import ChaosRun, Scenario
from pipeline.chaos.table_check import TableBurst, last_versions, probe_every_replica
from pipeline.chaos.verdict import OutputRecord
from pipeline.kafka.aiokafka.probe import run_sync
from pipeline.kafka.connect import connect
from pipeline.kafka.port import ConsumerOptions, TopicPartition
from pipeline.reading.offsets import committed_offsets

BOUNCE_DOWN_S = 10.0
LATENCY_S = 0.2
LATENCY_FOR_S = 30.0
BLACKHOLE_FOR_S = 30.0
WEEK_MS = str(7 * 24 * 3600 * 1000)


AFTER_RESYNC_S = 10.0
"""A broker back in every ISR takes its preferred leaderships back, which stalls those
partitions' produce for a moment: the next fault waits that out, as an operator would."""


def _in_sync(run: ChaosRun) -> None:
    topics = [run.input.name, run.output.name]
    waited = run.wait_until(
        lambda: not run.cluster.out_of_sync(topics), 180, "every partition back in sync"
    )
    run.extra.setdefault("resync_s", []).append(round(waited, 1))
    run.wait(AFTER_RESYNC_S)


def _bounce(run: ChaosRun, pick: str) -> None:
    for _ in range(run.options.bounces):
        node = (
            run.cluster.leader_of_most(run.input.name)
            if pick == "leader"
            else run.cluster.active_controller()
        )
        run.mark_fault(f"SIGKILL broker {node} (the {pick})")
        run.cluster.kill(node, signal.SIGKILL)
        run.wait(BOUNCE_DOWN_S)
        run.cluster.restart(node)
        _in_sync(run)


def leader_bounce(run: ChaosRun) -> None:
    _bounce(run, "leader")


def controller_bounce(run: ChaosRun) -> None:
    _bounce(run, "controller")


def rolling_restart(run: ChaosRun) -> None:
    for node in run.cluster.node_ids:
        run.mark_fault(f"SIGTERM broker {node}")
        run.cluster.kill(node, signal.SIGTERM)
        run.cluster.restart(node)
        _in_sync(run)


def frozen_replica(run: ChaosRun) -> None:
    frozen_s = run.options.frozen_s
    run.mark_fault(f"SIGSTOP r2 for {frozen_s:.0f}s")
    run.signal_replica("r2", signal.SIGSTOP)
    run.wait(frozen_s)
    run.extra["thawed_at"] = time.time()
    run.signal_replica("r2", signal.SIGCONT)
    run.wait_until(lambda: run.replicas["r2"].is_ready(), 120, "r2 ready again")


def zombie_outputs(run: ChaosRun, outputs: list[OutputRecord]) -> dict[str, Any]:
    """Outputs the frozen replica stored after its thaw for inputs another replica had
    output while it was frozen: its stale batches, finished as if it still owned them."""
    thawed_ms = run.extra.pop("thawed_at", 0.0) * 1000
    first: dict[tuple[int, int], OutputRecord] = {}
    for output in sorted(outputs, key=lambda o: o.timestamp_ms):
        first.setdefault((output.source_partition, output.source_offset), output)
    zombies = [
        o
        for o in outputs
        if o.replica == "r2"
        and o.timestamp_ms >= thawed_ms
        and (earlier := first[(o.source_partition, o.source_offset)]).replica != "r2"
        and earlier.timestamp_ms < thawed_ms
    ]
    return {"zombie_outputs": len(zombies)}


def _route_r1_through_proxy(run: ChaosRun) -> None:
    state = run.cluster.state
    network = FaultyNetwork((node.proxy_port, node.proxied_port) for node in state.nodes)
    network.start()
    run.extra_objects["network"] = network
    run.through_proxy.add("r1")


def _stop_proxy(run: ChaosRun) -> None:
    network = run.extra_objects.pop("network", None)
    if isinstance(network, FaultyNetwork):
        network.stop()


def network_faults(run: ChaosRun) -> None:
    network = run.extra_objects["network"]
    assert isinstance(network, FaultyNetwork)
    run.mark_fault(f"{LATENCY_S * 1000:.0f} ms latency between r1 and the brokers")
    network.set_latency(LATENCY_S)
    run.wait(LATENCY_FOR_S)
    run.mark_fault("blackhole between r1 and the brokers")
    network.blackhole()
    run.wait(BLACKHOLE_FOR_S)
    run.mark_fault("network healed")
    network.heal()


def _log_starts(run: ChaosRun) -> dict[int, int]:
    async def ask() -> dict[int, int]:
        consumer = connect(run.cluster.settings).consumer(ConsumerOptions())
        await consumer.start()
        try:
            tps = [TopicPartition(run.input.name, p) for p in range(PARTITIONS)]
            return {tp.partition: o for tp, o in (await consumer.beginning_offsets(tps)).items()}
        finally:
            await consumer.stop()

    return run_sync(ask())


def _set_input_configs(run: ChaosRun, configs: dict[str, str]) -> None:
    async def apply() -> None:
        admin = connect(run.cluster.settings).admin()
        await admin.start()
        try:
            refused = (await admin.set_topic_configs({run.input.name: configs}))[run.input.name]
            if refused:
                raise RuntimeError(f"setting {configs} on {run.input.name}: {refused}")
        finally:
            await admin.stop()

    run_sync(apply())


def offsets_past_retention(run: ChaosRun) -> None:
    """The group stops; retention deletes records behind its commits; it starts again."""
    run.baseline_until = time.time()
    for replica_id in list(run.replicas):
        run.stop_replica(replica_id)
    run.wait(5.0)
    commits = run_sync(committed_offsets(connect(run.cluster.settings), run.group, run.input.name))
    _set_input_configs(run, {"retention.ms": "1000", "segment.ms": "1000"})
    try:
        run.wait_until(
            lambda: all(_log_starts(run)[p] > commits.get(p, 0) for p in range(PARTITIONS)),
            120,
            "retention deleting records behind the group's commits",
        )
    finally:
        _set_input_configs(run, {"retention.ms": WEEK_MS, "segment.ms": WEEK_MS})
    starts = _log_starts(run)
    run.extra["deleted_unhandled"] = sum(starts[p] - commits.get(p, 0) for p in range(PARTITIONS))
    run.mark_fault("group started again behind retention")
    for replica_id in list(run.held):
        run.start_replica(replica_id)
    run.wait_until(
        lambda: all(r.is_ready() for r in run.replicas.values()), 120, "the replicas ready"
    )
    run.extra["offset_resets"] = int(
        sum(r.metrics().get("pipeline_offset_resets_total", 0) for r in run.replicas.values())
    )


def blocked_loop(run: ChaosRun) -> None:
    claim = run.log_dir / "block-once"
    claim.parent.mkdir(parents=True, exist_ok=True)
    claim.touch()
    blocked_s = run.options.blocked_s
    run.mark_fault(f"a handler blocks its worker's event loop for {blocked_s:.0f}s")
    run.load.block_once(blocked_s, str(claim.resolve()))
    run.wait(blocked_s)


PROBE_ROUNDS = 10


def kill9_three_times(run: ChaosRun) -> None:
    """SIGKILL one worker three times during a burst of table updates; then every
    replica's table must hold each key's last version, asked through its handler."""
    burst = TableBurst(run)
    burst.start()
    try:
        for attempt in range(3):
            run.mark_fault(f"SIGKILL r1 ({attempt + 1} of 3) during table updates")
            run.signal_replica("r1", signal.SIGKILL)
            run.wait(1.0)
            run.wait_until(lambda: run.replicas["r1"].is_ready(), 120, "r1 restarted and ready")
            run.wait(3.0)
    finally:
        updates = burst.stop()
    run.extra["table_updates"] = updates
    truth = last_versions(run)
    rounds = 0
    while True:
        rounds += 1
        answers = probe_every_replica(run, sorted(truth))
        wrong = [a for a in answers if truth.get(a[1]) != a[2]]
        if not wrong or rounds == PROBE_ROUNDS:
            break
        run.wait(3.0)  # a table still catching up: ask again
    run.extra["table_probe_rounds"] = rounds
    run.extra["table_mismatches"] = len(wrong)
    run.extra["table_replicas_checked"] = len({replica for replica, _, _ in answers})


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "leader-bounce",
            "SIGKILL the broker leading most input partitions, back after 10 s; 5 times",
            leader_bounce,
        ),
        Scenario(
            "controller-bounce", "the same for the active KRaft controller", controller_bounce
        ),
        Scenario(
            "rolling-restart",
            "SIGTERM each broker in turn, next once all are back in sync",
            rolling_restart,
        ),
        Scenario(
            "frozen-replica",
            "SIGSTOP a worker past its session timeout, then SIGCONT",
            frozen_replica,
            assess=zombie_outputs,
        ),
        Scenario(
            "network",
            "200 ms latency for 30 s, then a 30 s blackhole, between one worker and the brokers",
            network_faults,
            prepare=_route_r1_through_proxy,
            cleanup=_stop_proxy,
        ),
        Scenario(
            "retention",
            "the group stops, retention deletes records behind its commits, it starts again",
            offsets_past_retention,
        ),
        Scenario("blocked-loop", "a handler blocks a worker's event loop for 15 s", blocked_loop),
        Scenario(
            "disk-full",
            "the leader's log directory (a size-capped tmpfs) fills; then it is grown and the "
            "broker restarted (needs root and --own-cluster)",
            disk_full,
            precheck=refuse_unless_safe,
            cleanup=give_the_disk_back,
        ),
        Scenario(
            "kill9", "SIGKILL the same worker three times in a row under load", kill9_three_times
        ),
    )
}
