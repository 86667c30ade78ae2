"""The Docker path of the test fixtures, built here without a Docker engine."""

from __future__ import annotations

from pipeline.dev.processes import free_ports
from tests.docker_kafka import (
    BROKER_PORT,
    READY_LOG,
    build_container,
    env_name,
    kafka_container_config,
    pom_kafka_version,
)


def test_the_image_is_the_apache_one_at_the_version_of_the_local_jars() -> None:
    config = kafka_container_config(19092)
    assert config.image == f"apache/kafka:{pom_kafka_version()}"
    assert pom_kafka_version().count(".") == 2


def test_the_environment_is_a_one_node_kraft_broker_advertising_the_host_port() -> None:
    env = kafka_container_config(19092).env
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_NODE_ID"] == "1"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@localhost:9093"
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    assert env["KAFKA_LISTENERS"] == "PLAINTEXT://:9092,CONTROLLER://:9093"
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://localhost:19092"
    # The local broker's settings carried over from the template.
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "1"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["CLUSTER_ID"] and not env["CLUSTER_ID"].startswith("-")
    assert not any("$" in value for value in env.values()), "a placeholder left unfilled"


def test_property_names_map_to_the_images_environment_names() -> None:
    assert env_name("log.dirs") == "KAFKA_LOG_DIRS"
    assert env_name("share.coordinator.state.topic.min.isr") == (
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR"
    )
    assert env_name("a_b-c.d") == "KAFKA_A__B___C_D"


def test_the_container_is_built_with_that_configuration_without_starting() -> None:
    port = free_ports(1)[0]
    config = kafka_container_config(port)
    # An explicit API version: the client does not ask an engine for one.
    container = build_container(config, version="1.44")
    assert container.image.endswith(config.image)
    assert container.env == config.env
    assert container.ports == {str(BROKER_PORT): port}
    assert READY_LOG in repr(vars(container._wait_strategy))
    assert container._container is None  # nothing started
