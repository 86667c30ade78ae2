"""The gateway under sustained concurrent load: a healthy broker, then one that goes away."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipeline.dev.localkafka import LocalKafka
from pipeline.kafka.aiokafka.probe import live_broker_count, run_sync
from pipeline.kafka.connect import connect
from pipeline.ops.topics import ensure_topics
from pipeline.settings import PipelineSettings
from pipeline.wire.codec import HEADER_EVENT_ID, header_value
from tests.integration.test_gateway import CLEAN_EXIT, SHOP_KEY, order, start_gateway, wait_status
from tests.replicas import poll_until
from tests.support import read_all
from topics import CATALOGUE

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLIENTS = 50


@dataclass
class Answers:
    """What the clients were told: when, which status, and the acknowledged event ids."""

    log: list[tuple[float, int, str | None]] = field(default_factory=list)
    """(when, status, Retry-After); status 0 is a transport error, its repr in the third."""
    acknowledged: list[str] = field(default_factory=list)
    last_acknowledged_at: float = 0.0

    def statuses(self) -> Counter[int]:
        return Counter(status for _, status, _ in self.log)

    def transport_errors(self) -> list[str | None]:
        return [error for _, status, error in self.log if status == 0]


async def hammer(
    url: str, seconds: float, answers: Answers, enough: Callable[[], bool] = lambda: False
) -> None:
    """CLIENTS connections, each posting one order after the other for `seconds`, or until
    `enough()` says what the test waits for has been seen."""
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)

    async def client_loop(client: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline and not enough():
            try:
                response = await client.post(
                    url + "/v1/topics/orders/events",
                    json=order(customer_id=f"cust-{uuid.uuid4().int % 50:07d}"),
                    headers={"X-API-Key": SHOP_KEY},
                )
            except httpx.HTTPError as exc:
                answers.log.append((time.monotonic(), 0, repr(exc)))
                await asyncio.sleep(0.1)
                continue
            answers.log.append(
                (time.monotonic(), response.status_code, response.headers.get("Retry-After"))
            )
            if response.status_code == 200:
                answers.acknowledged.extend(e["event_id"] for e in response.json()["events"])
                answers.last_acknowledged_at = time.monotonic()
            elif response.status_code == 503:
                await asyncio.sleep(0.05)

    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(CLIENTS)))


def stored_ids(settings: PipelineSettings, topic: str) -> Counter[str]:
    records = run_sync(read_all(connect(settings), topic))
    return Counter(header_value(r.headers, HEADER_EVENT_ID) or "" for r in records)


@pytest.fixture
def prefix() -> str:
    return f"gl{uuid.uuid4().hex[:8]}."


async def test_fifty_clients_on_a_healthy_broker_get_only_2xx_and_every_event_once(
    kafka_bootstrap: str, prefix: str, tmp_path: Path
) -> None:
    settings = PipelineSettings(bootstrap_servers=kafka_bootstrap)
    await ensure_topics(connect(settings), CATALOGUE.with_prefix(prefix).with_dlqs())
    url, process = start_gateway(kafka_bootstrap, prefix, str(tmp_path / "gateway.log"))
    try:
        wait_status(url, "/readyz", 200)
        answers = Answers()
        await hammer(url, 10, answers)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) in CLEAN_EXIT
    assert answers.statuses() == {200: len(answers.log)}, (
        answers.statuses(),
        answers.transport_errors()[:5],
    )
    # Not a speed check (tests never assert on wall-clock speed): every client got answers.
    assert len(answers.acknowledged) >= CLIENTS, "the load never got going"
    stored = stored_ids(settings, prefix + "orders")
    assert set(stored) == set(answers.acknowledged)
    assert set(stored.values()) == {1}, "an event was stored twice"


async def test_a_broker_outage_gets_503s_with_retry_after_then_2xx_soon_after_it_returns(
    own_broker: LocalKafka, prefix: str, tmp_path: Path
) -> None:
    state = own_broker.load_state()
    assert state is not None
    settings = PipelineSettings(bootstrap_servers=state.bootstrap)
    await ensure_topics(connect(settings), CATALOGUE.with_prefix(prefix).with_dlqs())
    url, process = start_gateway(state.bootstrap, prefix, str(tmp_path / "gateway.log"))
    answers = Answers()
    marks: dict[str, float] = {}

    def broker_answers() -> bool:
        try:
            return live_broker_count(state.bootstrap) >= 1
        except Exception:  # noqa: BLE001 - refused while it starts
            return False

    async def outage() -> None:
        await asyncio.sleep(5)
        marks["stopped"] = time.monotonic()
        await asyncio.to_thread(own_broker.kill_node, 1, signal.SIGTERM)
        await asyncio.sleep(8)
        await asyncio.to_thread(own_broker.restart_node, 1)
        await asyncio.to_thread(poll_until, broker_answers, 60, 0.2, "the broker back")
        marks["back"] = time.monotonic()

    try:
        wait_status(url, "/readyz", 200)

        # Until 3 s of answers after the broker is back, within 40 s in all.
        def recovered_for_a_while() -> bool:
            return "back" in marks and answers.last_acknowledged_at > marks["back"] + 3

        await asyncio.gather(hammer(url, 40, answers, recovered_for_a_while), outage())
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) in CLEAN_EXIT

    during = [entry for entry in answers.log if marks["stopped"] < entry[0] < marks["back"]]
    refused = [entry for entry in during if entry[1] == 503]
    assert refused, f"no 503 while the broker was down: {Counter(s for _, s, _ in during)}"
    assert all(retry is not None and int(retry) >= 1 for _, _, retry in refused)
    assert {status for _, status, _ in answers.log} <= {200, 503}, (
        answers.statuses(),
        answers.transport_errors()[:5],
    )
    first_ok_after: Any = next(
        (t for t, status, _ in answers.log if status == 200 and t > marks["back"]), None
    )
    assert first_ok_after is not None, "no 2xx after the broker came back"
    assert first_ok_after - marks["back"] < 10, f"{first_ok_after - marks['back']:.1f}s to recover"
    stored = stored_ids(settings, prefix + "orders")
    missing = set(answers.acknowledged) - set(stored)
    assert not missing, f"{len(missing)} acknowledged events are not on the topic"
