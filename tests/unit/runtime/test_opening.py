"""A replica is opened whole before it runs; meanwhile it is alive, not ready, and stoppable."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipeline.dev.processes import free_ports
from pipeline.kafka.memory import MemoryBroker, MemoryClients
from pipeline.kafka.memory.admin import MemoryAdmin
from pipeline.kafka.port import Admin
from pipeline.runtime import opening
from pipeline.runtime.opening import EXIT_FAILED, EXIT_OK, StopSwitch
from pipeline.runtime.worker import Runtime, WorkerOptions
from pipeline.settings import RegistrySettings
from pipeline.stores.services import Services
from pipeline.wire.registry import current_registry, use_registry
from tests.unit.runtime.support import new_broker, settings, until
from tests.unit.runtime.test_runtime_memory import ECHO


class SlowAdmin(MemoryAdmin):
    """Answers the topics' limits only once let go: an opening that takes a while."""

    def __init__(self, broker: MemoryBroker, asked: asyncio.Event, go: asyncio.Event) -> None:
        super().__init__(broker)
        self.asked, self.go = asked, go

    async def topic_configs(self, names: Collection[str]) -> dict[str, dict[str, str]]:
        self.asked.set()
        await self.go.wait()
        return await super().topic_configs(names)


class SlowClients(MemoryClients):
    def __init__(self, broker: MemoryBroker) -> None:
        super().__init__(broker)
        self.asked, self.go = asyncio.Event(), asyncio.Event()

    def admin(self) -> Admin:
        return SlowAdmin(self.broker, self.asked, self.go)


async def answers(port: int) -> bool:
    try:
        async with httpx.AsyncClient() as http:
            await http.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
    except httpx.ConnectError:
        return False
    return True


def options(tmp_path: Path, health_port: int | None = None) -> WorkerOptions:
    return WorkerOptions(
        replica_id="r1",
        handle_signals=False,
        commit_interval_s=0.02,
        cache_dir=tmp_path,
        health_port=health_port,
    )


async def test_while_it_opens_it_is_alive_not_ready_then_the_runtime_answers(
    tmp_path: Path,
) -> None:
    clients = SlowClients(new_broker())
    (port,) = free_ports(1)
    opening = asyncio.ensure_future(
        Runtime.open(settings(), ECHO, options(tmp_path, port), clients)
    )
    await asyncio.wait_for(clients.asked.wait(), 10)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        live = await http.get("/healthz")
        ready = await http.get("/readyz")
        assert (live.status_code, ready.status_code) == (200, 503)
        assert "opening" in live.text
        clients.go.set()
        runtime = await asyncio.wait_for(opening, 10)
        assert runtime is not None
        run = asyncio.ensure_future(runtime.run())
        try:
            await until(lambda: runtime.ready, "the runtime to be ready")
            assert (await http.get("/readyz")).status_code == 200  # the runtime answers now
        finally:
            runtime.request_stop()
            assert await asyncio.wait_for(run, 20) == EXIT_OK
    assert not await answers(port), "the health server outlived its replica"


async def test_a_stop_while_it_opens_ends_the_opening_with_nothing_left_running(
    tmp_path: Path,
) -> None:
    clients = SlowClients(new_broker())
    (port,) = free_ports(1)
    switch = StopSwitch()
    switch.request_stop()
    clients.go.set()
    assert (
        await Runtime.open(settings(), ECHO, options(tmp_path, port), clients, None, switch) is None
    )
    assert switch.exit_code == EXIT_OK
    assert not await answers(port), "the health server was left running"


async def test_a_failure_while_it_opens_is_an_exit_failed_not_a_clean_stop(tmp_path: Path) -> None:
    switch = StopSwitch()
    switch.fail("table orders.customers: its follower crashed")
    clients = MemoryClients(new_broker())
    assert await Runtime.open(settings(), ECHO, options(tmp_path), clients, None, switch) is None
    assert switch.exit_code == EXIT_FAILED


async def test_the_schema_registry_is_the_processs_before_tables_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table over an avro or debezium_avro topic decodes through the registry while it
    catches up: the registry must be configured before the pool and tables open."""
    url = "http://registry.invalid:8081"
    seen: list[str | None] = []
    real_open_services = opening.open_services

    async def watching_open_services(*args: Any, **kwargs: Any) -> Services:
        found = current_registry()
        seen.append(found.url if found is not None else None)
        return await real_open_services(*args, **kwargs)

    monkeypatch.setattr(opening, "open_services", watching_open_services)
    previous = use_registry(None)
    try:
        with_registry = settings().model_copy(update={"schema_registry": RegistrySettings(url=url)})
        runtime = await Runtime.open(
            with_registry, ECHO, options(tmp_path), MemoryClients(new_broker())
        )
        assert runtime is not None
        await runtime.services.close()
    finally:
        use_registry(previous)
    assert seen == [url]
