"""A Kafka broker in a Docker container, for machines that have a Docker engine.

testcontainers' KafkaContainer runs KRaft only on Confluent's cp-kafka
images; the Apache image is configured by environment instead. The broker
gets the same Kafka version (pipeline/dev/files/pom.xml) and the same settings
(pipeline/dev/files/server.properties.template) as the local one the tests start
without Docker, so the suite means the same thing on both. The container
port is bound to a free host port chosen first, so the advertised listener
can name it before the container starts.
"""

from __future__ import annotations

import contextlib
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.dev.kafka_jars import KAFKA_POM
from pipeline.dev.localkafka import SERVER_TEMPLATE, new_cluster_id
from pipeline.dev.processes import free_ports

IMAGE = "apache/kafka"
BROKER_PORT = 9092
CONTROLLER_PORT = 9093
READY_LOG = "Kafka Server started"
CONTAINER_DATA_DIR = "/var/lib/kafka/data"
HOST = "localhost"


def pom_kafka_version(pom: Path | None = None) -> str:
    """The Kafka version the local broker's jars come from."""
    text = (pom or KAFKA_POM).read_text()
    found = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", text)
    if found is None:
        raise ValueError(f"{pom or KAFKA_POM} names no <kafka.version>")
    return found.group(1).strip()


def env_name(prop: str) -> str:
    """The Apache image's environment name for a broker property (KIP-975's rule)."""
    return "KAFKA_" + prop.replace("_", "__").replace("-", "___").replace(".", "_").upper()


@dataclass(frozen=True)
class KafkaContainerConfig:
    image: str
    env: dict[str, str]
    host_port: int

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.host_port}"


def kafka_container_config(host_port: int, version: str | None = None) -> KafkaContainerConfig:
    """The container's image and environment: the local template, one node, container listeners."""
    template = string.Template(SERVER_TEMPLATE.read_text())
    rendered = template.substitute(
        node_id=1,
        voters=f"1@{HOST}:{CONTROLLER_PORT}",
        # The listeners are the container's own (below).
        listener_lines="inter.broker.listener.name=PLAINTEXT\n"
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        security_properties="",
        data_dir=CONTAINER_DATA_DIR,
        replication=1,
        internal_min_isr=1,
    )
    properties = {}
    for line in rendered.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            properties[key.strip()] = value.strip()
    properties["listeners"] = f"PLAINTEXT://:{BROKER_PORT},CONTROLLER://:{CONTROLLER_PORT}"
    properties["advertised.listeners"] = f"PLAINTEXT://{HOST}:{host_port}"
    env = {env_name(key): value for key, value in properties.items()}
    env["CLUSTER_ID"] = new_cluster_id()
    return KafkaContainerConfig(f"{IMAGE}:{version or pom_kafka_version()}", env, host_port)


def build_container(config: KafkaContainerConfig, **docker_client_kw: Any) -> Any:
    """A testcontainers DockerContainer for `config`, not started."""
    from testcontainers.core.container import DockerContainer  # type: ignore[import-not-found]
    from testcontainers.core.wait_strategies import (  # type: ignore[import-not-found]
        LogMessageWaitStrategy,
    )

    container = DockerContainer(config.image, docker_client_kw=docker_client_kw or None)
    container.with_envs(**config.env)
    container.with_bind_ports(BROKER_PORT, config.host_port)
    container.waiting_for(LogMessageWaitStrategy(READY_LOG))
    return container


@contextlib.contextmanager
def docker_kafka() -> Iterator[str]:
    """A started broker's bootstrap address; the container is removed afterwards."""
    config = kafka_container_config(free_ports(1)[0])
    with build_container(config):
        yield config.bootstrap
