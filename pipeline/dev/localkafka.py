"""A local Apache Kafka cluster in KRaft mode, run from Maven Central jars.

There is no Docker engine or Kafka tarball on the machines this project
targets, only Java and Maven. Maven resolves `org.apache.kafka:kafka_2.13`
into its own cache (~/.m2), we keep the resulting classpath, format each
node's storage with `kafka.tools.StorageTool` and run `kafka.Kafka` per node.
Every node is broker and controller at once, so three nodes are a real
three-voter quorum that survives losing one.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from string import Template

from pipeline import paths
from pipeline.dev.kafka_jars import java_executable, resolve_classpath
from pipeline.dev.processes import free_ports, pid_alive, port_open, wait_dead
from pipeline.dev.readiness import wait_for_metadata
from pipeline.dev.secured import (
    ADMIN,
    SECURED_MODES,
    Secured,
    SecurityMode,
    plaintext_listener_lines,
)
from pipeline.errors import InfraError
from pipeline.settings import PipelineSettings

SERVER_TEMPLATE = Path(__file__).parent / "files" / "server.properties.template"

STATE_FILE = "cluster.json"


@dataclass
class NodeState:
    node_id: int
    broker_port: int
    controller_port: int
    data_dir: str
    config_file: str
    log_file: str
    pid: int | None = None
    proxied_port: int = 0
    """A second listener that advertises `proxy_port`: a client bootstrapped through a
    proxy there keeps talking through it (pipeline.chaos.proxy); nothing else uses it."""
    proxy_port: int = 0


@dataclass
class ClusterState:
    cluster_id: str
    brokers: int
    nodes: list[NodeState] = field(default_factory=list)
    security: SecurityMode = "plaintext"

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{node.broker_port}" for node in self.nodes)

    @property
    def proxy_bootstrap(self) -> str:
        """Where a client whose traffic goes through proxies connects (pipeline.chaos.proxy)."""
        return ",".join(f"127.0.0.1:{node.proxy_port}" for node in self.nodes)


@dataclass
class NodeStatus:
    node_id: int
    pid: int | None
    alive: bool
    port_open: bool
    broker_port: int


def new_cluster_id() -> str:
    """A Kafka cluster id (base64url UUID) that does not start with '-'.

    Kafka's own Uuid.randomUuid() skips those too: command-line parsers,
    kafka-storage's among them, take a leading '-' for an option.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class LocalKafka:
    """Start, inspect and stop a local cluster whose state lives in one folder.

    `state_dir` holds each node's data, config and log plus `cluster.json`
    (ports, pids), so any later process, such as `pipeline infra status`, can
    find and stop what an earlier one started.
    """

    def __init__(self, state_dir: Path, cache_dir: Path, heap_mb: int = 384) -> None:
        self.state_dir = state_dir
        self.cache_dir = cache_dir
        self.heap_mb = heap_mb

    @property
    def _state_path(self) -> Path:
        return self.state_dir / STATE_FILE

    def load_state(self) -> ClusterState | None:
        if not self._state_path.exists():
            return None
        raw = json.loads(self._state_path.read_text())
        nodes = [NodeState(**node) for node in raw.pop("nodes")]
        return ClusterState(nodes=nodes, **raw)

    def _save_state(self, state: ClusterState) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(state), indent=2))
        tmp.replace(self._state_path)

    def status(self) -> list[NodeStatus]:
        state = self.load_state()
        if state is None:
            return []
        return [
            NodeStatus(
                node_id=node.node_id,
                pid=node.pid,
                alive=pid_alive(node.pid),
                port_open=port_open(node.broker_port),
                broker_port=node.broker_port,
            )
            for node in state.nodes
        ]

    @property
    def secured(self) -> Secured | None:
        """The security of the cluster this folder holds (None: plaintext, or none)."""
        state = self.load_state()
        if state is None or state.security not in SECURED_MODES:
            return None
        return Secured(state.security, self.state_dir / "security")

    def admin_settings(self, state: ClusterState) -> PipelineSettings:
        """What an administrator connects with: plaintext, or the admin principal's credentials."""
        secured = self.secured
        if secured is None:
            return PipelineSettings(bootstrap_servers=state.bootstrap)
        return secured.settings(ADMIN, state.bootstrap)

    def up(
        self,
        brokers: int = 1,
        timeout_s: float = 120.0,
        progress: Callable[[str], None] | None = None,
        security: SecurityMode = "plaintext",
    ) -> ClusterState:
        """Start the cluster, or return the one already running (idempotent)."""
        if brokers not in (1, 3):
            raise InfraError(f"--brokers must be 1 or 3, not {brokers}")
        state = self.load_state()
        if state is not None:
            alive = [pid_alive(node.pid) for node in state.nodes]
            if all(alive):
                if state.brokers != brokers or state.security != security:
                    raise InfraError(
                        f"a {state.brokers}-broker {state.security} cluster is already running "
                        f"at {state.bootstrap}; run `pipeline infra down` first to start one "
                        f"with {brokers} broker(s), {security}."
                    )
                self._wait_ready(state, timeout_s)
                return state
            # Partly dead: restart the dead nodes on their existing storage.
            if state.brokers == brokers and state.security == security:
                classpath = resolve_classpath(self.cache_dir, progress)
                for node, is_alive in zip(state.nodes, alive, strict=True):
                    if not is_alive:
                        self._launch(node, classpath)
                self._save_state(state)
                self._wait_ready(state, timeout_s)
                return state
            self.down()

        java_executable()
        classpath = resolve_classpath(self.cache_dir, progress)
        state = self._prepare(brokers, classpath, progress, security)
        for node in state.nodes:
            self._launch(node, classpath)
        self._save_state(state)
        if progress:
            progress(f"waiting for {brokers} broker(s) to answer metadata requests")
        try:
            self._wait_ready(state, timeout_s)
            secured = self.secured
            if secured is not None:
                secured.grant_application(self.admin_settings(state), progress)
                secured.write_env_files(state.bootstrap)
        except InfraError:
            self.down()
            raise
        return state

    def _wait_ready(self, state: ClusterState, timeout_s: float) -> None:
        wait_for_metadata(
            state.bootstrap,
            state.brokers,
            timeout_s,
            [Path(node.log_file) for node in state.nodes],
            [node.pid for node in state.nodes],
            self.admin_settings(state) if state.security != "plaintext" else None,
        )

    def _prepare(
        self,
        brokers: int,
        classpath: str,
        progress: Callable[[str], None] | None,
        security: SecurityMode,
    ) -> ClusterState:
        cluster_dir = self.state_dir
        if cluster_dir.exists():
            for child in cluster_dir.glob("node-*"):
                shutil.rmtree(child)
        cluster_dir.mkdir(parents=True, exist_ok=True)
        ports = free_ports(4 * brokers)
        state = ClusterState(cluster_id=new_cluster_id(), brokers=brokers, security=security)
        secured = (
            Secured(security, cluster_dir / "security").create()
            if security in SECURED_MODES
            else None
        )
        for index in range(brokers):
            node_id = index + 1
            node_dir = cluster_dir / f"node-{node_id}"
            state.nodes.append(
                NodeState(
                    node_id=node_id,
                    broker_port=ports[4 * index],
                    controller_port=ports[4 * index + 1],
                    proxied_port=ports[4 * index + 2],
                    proxy_port=ports[4 * index + 3],
                    data_dir=str(node_dir / "data"),
                    config_file=str(node_dir / "server.properties"),
                    log_file=str(node_dir / "kafka.log"),
                )
            )
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in state.nodes)
        template = Template(SERVER_TEMPLATE.read_text())
        for node in state.nodes:
            Path(node.data_dir).mkdir(parents=True)
            Path(node.config_file).write_text(
                template.substitute(
                    node_id=node.node_id,
                    voters=voters,
                    listener_lines=(
                        secured.listener_lines(node.broker_port, node.controller_port)
                        if secured
                        else plaintext_listener_lines(node)
                    ),
                    security_properties=secured.server_properties() if secured else "",
                    data_dir=node.data_dir,
                    replication=min(brokers, 3),
                    internal_min_isr=2 if brokers >= 3 else 1,
                )
            )
            if secured:
                os.chmod(node.config_file, 0o600)  # it holds the inter-broker password
            if progress:
                progress(f"formatting storage of node {node.node_id}")
            self._format(node, state.cluster_id, classpath, secured)
        return state

    def _java_command(self, classpath: str, main_class: str, *args: str) -> list[str]:
        return [
            java_executable(),
            f"-Xms{min(128, self.heap_mb)}m",
            f"-Xmx{self.heap_mb}m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSS",
            "-Dorg.slf4j.simpleLogger.log.org.apache.kafka.clients=warn",
            "-cp",
            classpath,
            main_class,
            *args,
        ]

    def _format(
        self, node: NodeState, cluster_id: str, classpath: str, secured: Secured | None
    ) -> None:
        command = self._java_command(
            classpath,
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={cluster_id}",
            f"--config={node.config_file}",
            *(secured.format_arguments() if secured else ()),
        )
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise InfraError(
                f"formatting storage of node {node.node_id} failed (exit {result.returncode}):\n"
                + (result.stdout + result.stderr)[-3000:]
            )

    def _launch(self, node: NodeState, classpath: str) -> None:
        log = open(node.log_file, "ab")  # noqa: SIM115 - handed to the child
        try:
            process = subprocess.Popen(
                self._java_command(classpath, "kafka.Kafka", node.config_file),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            log.close()
        node.pid = process.pid

    def kill_node(self, node_id: int, sig: int = signal.SIGKILL) -> None:
        """Signal one node; tests use SIGKILL to show acknowledged data survives."""
        state = self._require_state()
        node = next(n for n in state.nodes if n.node_id == node_id)
        if node.pid is not None and pid_alive(node.pid):
            os.kill(node.pid, sig)
            wait_dead(node.pid, 30.0)

    def restart_node(self, node_id: int) -> None:
        state = self._require_state()
        node = next(n for n in state.nodes if n.node_id == node_id)
        if not pid_alive(node.pid):
            self._launch(node, resolve_classpath(self.cache_dir))
            self._save_state(state)

    def _require_state(self) -> ClusterState:
        state = self.load_state()
        if state is None:
            raise InfraError(f"no local cluster under {self.state_dir}; run `pipeline infra up`")
        return state

    def down(self, timeout_s: float = 30.0) -> bool:
        """Stop every node (SIGTERM, then SIGKILL after the deadline).

        Returns whether anything was running. Data stays on disk until the
        next `up`, which starts a fresh cluster.
        """
        state = self.load_state()
        if state is None:
            return False
        running = [node.pid for node in state.nodes if node.pid is not None and pid_alive(node.pid)]
        for pid in running:
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for pid in running:
            if not wait_dead(pid, max(0.1, deadline - time.monotonic())):
                os.kill(pid, signal.SIGKILL)
                wait_dead(pid, 10.0)
        self._state_path.unlink(missing_ok=True)
        return bool(running)


@contextlib.contextmanager
def ephemeral_kafka(
    brokers: int = 1,
    progress: Callable[[str], None] | None = None,
    heap_mb: int = 384,
) -> Iterator[str]:
    """A bootstrap address for one run: KAFKA_BOOTSTRAP if set, else a private cluster.

    Benchmarks and tests use this so they never touch a cluster the user
    started with `pipeline infra up`; the private one lives in a temporary
    folder and is stopped on exit, also on Ctrl-C.
    """
    existing = os.environ.get("KAFKA_BOOTSTRAP")
    if existing:
        yield existing
        return
    with tempfile.TemporaryDirectory(prefix="pipeline-kafka-") as folder:
        cluster = LocalKafka(Path(folder), paths.cache_dir(), heap_mb=heap_mb)
        try:
            yield cluster.up(brokers=brokers, progress=progress).bootstrap
        finally:
            cluster.down()
