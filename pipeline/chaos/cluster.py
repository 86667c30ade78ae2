"""The cluster a chaos run may break: a local three-node one it can kill and restart.

Faults are real: brokers get SIGKILL and SIGTERM, so a run refuses any
cluster it did not start itself (`pipeline infra up --brokers 3`, or
`--own-cluster` for one of its own in a temporary folder).
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from collections.abc import Collection
from pathlib import Path

from pipeline.dev.localkafka import ClusterState, LocalKafka
from pipeline.dev.processes import pid_alive
from pipeline.errors import InfraError
from pipeline.kafka.aiokafka.probe import run_sync
from pipeline.kafka.connect import connect
from pipeline.kafka.port import PartitionInfo
from pipeline.ops.topics import TopicsOnCluster
from pipeline.settings import PipelineSettings

BROKERS = 3


class ChaosCluster:
    def __init__(self, kafka: LocalKafka, configured_bootstrap: str | None = None) -> None:
        """`configured_bootstrap`: the cluster the user's settings name, if any; it must be
        this one."""
        state = kafka.load_state()
        if state is None:
            raise InfraError(
                f"no local cluster under {kafka.state_dir}: chaos runs only against a cluster "
                "it started, since it kills brokers. Start one with `pipeline infra up "
                "--brokers 3`, or pass --own-cluster."
            )
        if state.brokers != BROKERS:
            raise InfraError(
                f"the local cluster at {state.bootstrap} has {state.brokers} broker(s); chaos "
                f"needs {BROKERS} (RF 3, min.insync.replicas 2). `pipeline infra down` then "
                "`pipeline infra up --brokers 3`, or pass --own-cluster."
            )
        if not all(node.proxy_port for node in state.nodes):
            raise InfraError(
                f"the local cluster at {state.bootstrap} was started by an older version with "
                "no proxied listener; restart it (`pipeline infra down`, then `pipeline infra "
                "up --brokers 3`)."
            )
        dead = [node.node_id for node in state.nodes if not pid_alive(node.pid)]
        if dead:
            raise InfraError(
                f"node(s) {dead} of the local cluster are not running; `pipeline infra up "
                "--brokers 3` restarts them."
            )
        configured = configured_bootstrap
        if configured and set(configured.split(",")) != set(state.bootstrap.split(",")):
            raise InfraError(
                f"PIPELINE_BOOTSTRAP_SERVERS is {configured}, not the local cluster "
                f"({state.bootstrap}) that chaos may break; unset it or pass --own-cluster."
            )
        self.kafka = kafka
        self.state: ClusterState = state
        self.settings = PipelineSettings(bootstrap_servers=state.bootstrap)

    @property
    def node_ids(self) -> list[int]:
        return [node.node_id for node in self.state.nodes]

    def describe(self, topics: Collection[str]) -> dict[str, list[PartitionInfo]]:
        async def run() -> dict[str, list[PartitionInfo]]:
            async with TopicsOnCluster(connect(self.settings)) as cluster:
                return await cluster.partitions(list(topics))

        return run_sync(run())

    def leader_of_most(self, topic: str) -> int:
        """The broker leading the most partitions of `topic` (ties: the lowest id)."""
        leaders = Counter(info.leader for info in self.describe([topic]).get(topic, []))
        if not leaders:
            raise InfraError(f"topic {topic!r} has no partition leaders to choose from")
        return min(leaders, key=lambda node: (-leaders[node], node))

    def active_controller(self) -> int:
        """The KRaft quorum's leader, from each node's quorum-state file (the highest epoch).

        A Kafka client's DescribeCluster names a random broker as "controller"
        in KRaft mode, so the metadata log's own record is what tells.
        """
        best: tuple[int, int] | None = None
        for node in self.state.nodes:
            path = Path(node.data_dir) / "__cluster_metadata-0" / "quorum-state"
            try:
                quorum = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            leader, epoch = int(quorum.get("leaderId", -1)), int(quorum.get("leaderEpoch", -1))
            if leader > 0 and (best is None or epoch > best[1]):
                best = (leader, epoch)
        if best is None:
            raise InfraError("no node's quorum-state names a controller leader")
        return best[0]

    def kill(self, node_id: int, sig: int = signal.SIGKILL) -> None:
        self.kafka.kill_node(node_id, sig)

    def restart(self, node_id: int) -> None:
        self.kafka.restart_node(node_id)
        self.state = self.kafka.load_state() or self.state

    def out_of_sync(self, topics: Collection[str]) -> list[str]:
        """Partitions of `topics` with a replica out of the ISR (or why that is unknown)."""
        try:
            layout = self.describe(topics)
        except Exception as exc:  # noqa: BLE001 - a broker restarting: the caller asks again
            return [f"metadata: {type(exc).__name__}: {exc}"]
        missing = [f"{topic} (not described)" for topic in topics if topic not in layout]
        return missing + [
            f"{topic}-{info.partition} (isr {info.isr} of {info.replicas})"
            for topic, infos in layout.items()
            for info in infos
            if len(info.isr) < len(info.replicas)
        ]
