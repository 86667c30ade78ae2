"""The same port tests on the in-memory broker and on a real one, so the two cannot drift."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from pipeline.kafka.connect import connect
from pipeline.kafka.memory import MemoryClients
from pipeline.kafka.port import Clients, NewTopic
from pipeline.settings import PipelineSettings


@pytest.fixture(
    params=[
        "memory",
        pytest.param("aiokafka", marks=pytest.mark.integration),
        pytest.param("confluent", marks=pytest.mark.integration),
    ]
)
def clients(request: pytest.FixtureRequest) -> Clients:
    if request.param == "memory":
        return MemoryClients()
    bootstrap = request.getfixturevalue("kafka_bootstrap")
    return connect(PipelineSettings(bootstrap_servers=bootstrap, client=request.param))


@pytest.fixture
def topic_name() -> str:
    return f"contract.{uuid.uuid4().hex[:10]}"


async def create(clients: Clients, name: str, partitions: int = 3, **configs: str) -> str:
    admin = clients.admin()
    await admin.start()
    try:
        answers = await admin.create_topics([NewTopic(name, partitions, 1, dict(configs))])
        assert answers == {name: None}, answers
        # A real cluster needs a moment before every broker knows the topic.
        for _ in range(50):
            if name in await admin.describe_topics([name]):
                break
    finally:
        await admin.stop()
    return name


@pytest.fixture
async def topic(clients: Clients, topic_name: str) -> AsyncIterator[str]:
    yield await create(clients, topic_name)
