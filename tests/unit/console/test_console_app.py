"""The console's pages and actions on the in-memory broker: escaping, refusals, one redrive."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
from fastapi.testclient import TestClient

from pipeline.console.app import ConsoleConfig, create_console
from pipeline.console.autoscaler import read_decisions
from pipeline.console.workers import read_exposition
from pipeline.gateway.auth import hash_key
from pipeline.kafka.memory import MemoryClients
from pipeline.kafka.memory.cluster import MemoryBroker
from pipeline.kafka.port import TopicPartition
from pipeline.metrics import Metrics, labels_of
from pipeline.publishing.producer import EventProducer
from pipeline.settings import ApiKey, PipelineSettings
from pipeline.wire.codec import record_copy

SOURCE = "shop.orders"
DLQ = "shop.orders.dlq"
KEY = "the-ops-key"
HOSTILE = "<script>alert('dlq')</script>"


def dead_letter(broker: MemoryBroker) -> None:
    """One record as a worker dead-letters it, carrying markup an upstream put in it."""
    headers = [
        ("event-id", b"e-1"),
        ("dlq-error-type", b"ValidationError"),
        ("dlq-processor", b"enrich"),
        ("dlq-error-message", f"bad field {HOSTILE}".encode()),
        ("dlq-source-topic", SOURCE.encode()),
        ("dlq-source-partition", b"0"),
        ("dlq-source-offset", b"41"),
    ]
    value = msgpack.packb({"order_id": HOSTILE})
    record = record_copy(b"k-1", value, headers, DLQ, 0, -1)

    async def publish() -> None:
        settings = PipelineSettings(bootstrap_servers="memory://")
        async with EventProducer(settings, clients=MemoryClients(broker)) as producer:
            await (await producer.submit_encoded(DLQ, [record]))

    asyncio.run(publish())


@pytest.fixture
def broker() -> MemoryBroker:
    broker = MemoryBroker()
    broker.create_topic(SOURCE, 1, {})
    broker.create_topic(DLQ, 1, {})
    dead_letter(broker)
    broker.group("enrich").commit({TopicPartition(SOURCE, 0): 0}, "")
    return broker


def console(broker: MemoryBroker, keys: list[ApiKey]) -> Iterator[TestClient]:
    settings = PipelineSettings(bootstrap_servers="memory://")
    settings.console.api_keys = keys
    app = create_console(
        ConsoleConfig(settings, None, interval_s=60, clients=MemoryClients(broker))
    )
    with TestClient(app) as client:
        yield client


@pytest.fixture
def read_only(broker: MemoryBroker) -> Iterator[TestClient]:
    yield from console(broker, [])


@pytest.fixture
def keyed(broker: MemoryBroker) -> Iterator[TestClient]:
    yield from console(broker, [ApiKey(name="ops", sha256=hash_key(KEY), topics=["*"])])


def test_what_a_record_carries_is_shown_escaped(read_only: TestClient) -> None:
    listing = read_only.get(f"/dlq/{DLQ}")
    record = read_only.get(f"/dlq/{DLQ}/0/0")
    assert listing.status_code == record.status_code == 200
    for page in (listing.text, record.text):
        assert HOSTILE not in page
    assert "&lt;script&gt;" in record.text  # the header, escaped
    assert "ValidationError" in listing.text and "dlq-source-offset" in record.text


def test_a_missing_record_or_a_topic_that_is_no_dlq_is_a_clear_404(read_only: TestClient) -> None:
    missing = read_only.get(f"/dlq/{DLQ}/0/7")
    assert missing.status_code == 404 and f"no record at {DLQ}-0@7" in missing.text
    wrong = read_only.get(f"/dlq/{SOURCE}")
    assert wrong.status_code == 404 and "is not a dead-letter topic" in wrong.text
    assert read_only.get("/groups/nobody").status_code == 404


def test_a_console_without_keys_refuses_every_action(read_only: TestClient) -> None:
    preview = read_only.get(f"/dlq/{DLQ}/redrive")
    assert preview.status_code == 200 and "read-only" in preview.text
    token = preview.text.split('data-token="')[1].split('"')[0]
    refused = read_only.post(
        f"/api/dlq/{DLQ}/redrive", params={"token": token}, headers={"X-API-Key": KEY}
    )
    assert refused.status_code == 403 and refused.json()["error"]["reason"] == "read_only"


def test_a_redrive_needs_the_key_and_the_previews_token_and_sends_once(
    keyed: TestClient, broker: MemoryBroker
) -> None:
    preview = keyed.get(f"/dlq/{DLQ}/redrive")
    token = preview.text.split('data-token="')[1].split('"')[0]
    url = f"/api/dlq/{DLQ}/redrive"
    assert keyed.post(url, params={"token": token}).status_code == 401
    wrong_key = keyed.post(url, params={"token": token}, headers={"X-API-Key": "guess"})
    assert wrong_key.status_code == 401
    stale = keyed.post(url, params={"token": "0" * 32}, headers={"X-API-Key": KEY})
    assert stale.status_code == 409 and "preview again" in stale.json()["error"]["message"]
    assert broker.topic(SOURCE).partitions[0].high_watermark == 0  # nothing sent so far
    sent = keyed.post(url, params={"token": token}, headers={"X-API-Key": KEY})
    assert sent.status_code == 200 and sent.json()["sent"] == 1
    again = keyed.post(url, params={"token": token}, headers={"X-API-Key": KEY})
    assert again.status_code == 409
    assert broker.topic(SOURCE).partitions[0].high_watermark == 1


def test_the_overview_and_the_api_show_the_groups_lag(read_only: TestClient) -> None:
    overview = read_only.get("/api/overview").json()
    (group,) = [g for g in overview["groups"] if g["group"] == "enrich"]
    assert group["lag"] == 0 and group["topics"][0]["topic"] == SOURCE
    assert read_only.get("/").status_code == 200
    assert "enrich" in read_only.get("/groups/enrich").text
    assert list(read_only.get("/api/history").json()) == ["enrich"]


def test_a_workers_exposition_is_read_by_name() -> None:
    metrics = Metrics()
    metrics.gauge("worker_info", lambda: {labels_of(processor="p", replica="r1", group="g"): 1})
    metrics.gauge("held_records", lambda: {(): 12.0})
    metrics.gauge("partition_queued_records", lambda: {labels_of(topic="t", partition=3): 5.0})
    metrics.gauge("breaker_state", lambda: {labels_of(dependency="postgres"): 2.0})
    metrics.gauge("ready", lambda: {(): 1.0})
    restoring = {labels_of(topic="t", partition=3): 0.0, labels_of(topic="t", partition=4): 9.0}
    metrics.gauge("partition_restore_remaining_records", lambda: restoring)
    metrics.gauge("standby_partitions", lambda: {(): 2.0})
    reading = read_exposition("http://w/metrics", metrics.render())
    assert reading.restoring == {("t", 4): 9.0}, "only partitions still restoring"
    assert reading.standby_partitions == 2
    assert (reading.group, reading.replica, reading.processor) == ("g", "r1", "p")
    assert reading.held_records == 12 and reading.queued == {("t", 3): 5.0}
    assert reading.breakers == {"postgres": "open"} and reading.ready is True


def test_decisions_are_read_per_group_and_a_torn_line_is_skipped(tmp_path: Path) -> None:
    status = tmp_path / "scale.jsonl"
    lines = [
        json.dumps({"group": "g", "at": 1000.0, "desired": 2, "replicas": 1, "reason": "up"}),
        json.dumps({"group": "g", "at": 10.0, "desired": 1, "replicas": 1, "reason": "old"}),
        '{"group": "g", "at": 100',
    ]
    status.write_text("\n".join(lines))
    found = read_decisions([status, tmp_path / "missing.jsonl"], now=1100.0)
    assert [d["reason"] for d in found["g"]] == ["up"]


def test_a_replay_shows_its_progress_from_the_range_it_stored(broker: MemoryBroker) -> None:
    stored = json.dumps({"v": 1, "ranges": {"0": [0, 10]}})
    broker.group("replay.backfill").commit({TopicPartition(SOURCE, 0): 4}, stored)
    broker.group("replay.torn").commit({TopicPartition(SOURCE, 0): 4}, '{"v": 1, "ran')
    for client in console(broker, []):
        (replay,) = client.get("/api/replays").json()
        assert replay["group"] == "replay.backfill"
        assert (replay["done"], replay["total"], replay["finished"]) == (4, 10, False)
        assert "replay.backfill" in client.get("/replays").text


async def test_a_vanished_broker_keeps_the_last_figures_and_says_why(broker: MemoryBroker) -> None:
    from pipeline.console.watch import ClusterWatch

    watch = ClusterWatch(MemoryClients(broker), None, interval_s=0.01)
    await watch.start()
    try:
        before = watch.snapshot
        assert "enrich" in before.groups and before.error is None
        broker.reachable = False
        deadline = asyncio.get_running_loop().time() + 5
        while watch.snapshot.error is None:
            assert asyncio.get_running_loop().time() < deadline, "the failure was not reported"
            await asyncio.sleep(0.01)
        assert "unreachable" in str(watch.snapshot.error)
        assert watch.snapshot.groups == before.groups  # the figures stay on the page
        broker.reachable = True
        while watch.snapshot.error is not None:
            assert asyncio.get_running_loop().time() < deadline + 5, "it did not recover"
            await asyncio.sleep(0.01)
    finally:
        broker.reachable = True
        await watch.stop()


async def test_a_queue_processors_share_group_is_watched_with_its_backlog() -> None:
    """The brokers list consumer groups only: a share group is watched because a queue-mode
    processor names it, and shows the records without an outcome as its lag."""
    from pipeline.console.watch import ClusterWatch
    from pipeline.processor import Processor
    from pipeline.queue_policy import QueuePolicy
    from pipeline.testing import TestPipeline
    from tests.unit.runtime.support import SOURCE, Step

    released = asyncio.Event()

    async def waits(step: Step, ctx: object) -> None:
        if step.n == 0:
            await released.wait()

    processor = Processor("mail", SOURCE, waits, delivery="queue", queue=QueuePolicy(slots=2))
    async with TestPipeline(processor) as run:
        await run.publish(SOURCE, [Step(key=f"k{n}", n=n) for n in range(20)])
        watch = ClusterWatch(
            MemoryClients(run.broker), None, share_groups={"mail": SOURCE.name}, interval_s=60
        )
        async with watch:
            deadline = asyncio.get_running_loop().time() + 10
            while (found := (await watch.sample()).groups.get("mail")) is None or found.lag != 1:
                assert asyncio.get_running_loop().time() < deadline, found
                await asyncio.sleep(0.02)  # the other 19 accepted, the first in hand
            assert found.description.state == "Stable"
            assert len(found.description.members) == 2  # its slots
            assert found.lags[0].kind == "share"
            released.set()
            await run.processed()
            assert (await watch.sample()).groups["mail"].lag == 0
