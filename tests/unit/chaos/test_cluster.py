"""Chaos kills brokers: it refuses any cluster it did not start, saying what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.chaos.cluster import ChaosCluster
from pipeline.dev.localkafka import ClusterState, LocalKafka, NodeState
from pipeline.errors import InfraError


def local(tmp_path: Path, brokers: int) -> LocalKafka:
    kafka = LocalKafka(tmp_path, tmp_path / "cache")
    state = ClusterState("id", brokers)
    for node_id in range(1, brokers + 1):
        state.nodes.append(
            NodeState(node_id, 9000 + node_id, 9100 + node_id, "d", "c", "l", None, 1, 2)
        )
    kafka._save_state(state)
    return kafka


def test_no_local_cluster_is_refused_with_the_command_to_start_one(tmp_path: Path) -> None:
    with pytest.raises(InfraError, match=r"pipeline infra up --brokers 3`, or pass --own-cluster"):
        ChaosCluster(LocalKafka(tmp_path, tmp_path))


def test_a_single_broker_cluster_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InfraError, match="has 1 broker"):
        ChaosCluster(local(tmp_path, 1))


def test_a_cluster_whose_nodes_are_not_running_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InfraError, match=r"node\(s\) \[1, 2, 3\] of the local cluster are not"):
        ChaosCluster(local(tmp_path, 3))
