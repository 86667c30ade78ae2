"""`pipeline topics` against a real broker, through the real command line."""

from __future__ import annotations

import asyncio
import time

import pytest

from pipeline.kafka.connect import connect
from pipeline.kafka.port import ShareOptions
from pipeline.ops.schema_registry import registered_schemas
from pipeline.ops.topics import TopicsOnCluster
from pipeline.publishing.producer import EventProducer
from pipeline.settings import PipelineSettings
from tests.integration.processors import QUEUE_SOURCE, Keyed
from tests.support import run_cli

pytestmark = pytest.mark.integration


def cli_env(settings: PipelineSettings, unique: str, catalogue: str) -> dict[str, str]:
    return {
        "PIPELINE_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "PIPELINE_TOPIC_PREFIX": unique,
        "PIPELINE_CATALOGUE_MODULE": f"tests.integration.catalogues.{catalogue}",
    }


async def observe(settings: PipelineSettings, *names: str):  # type: ignore[no-untyped-def]
    async with TopicsOnCluster(connect(settings)) as admin:
        return await admin.observe(list(names))


async def test_apply_creates_topic_and_dlq_then_is_a_no_op(
    settings: PipelineSettings, unique: str
) -> None:
    env = cli_env(settings, unique, "v1")
    dry = run_cli("topics", "apply", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "create" in dry.stdout
    assert await observe(settings, unique + "samples") == {}

    applied = run_cli("topics", "apply", env=env)
    assert applied.returncode == 0, applied.stderr
    assert "replication factor 3 clamped to 1" in applied.stderr
    topics = await observe(settings, unique + "samples", unique + "samples.dlq")
    main, dlq = topics[unique + "samples"], topics[unique + "samples.dlq"]
    assert main.partitions == 4 and dlq.partitions == 4
    assert main.configs == {
        "cleanup.policy": "delete",
        "retention.ms": "3600000",
        "min.insync.replicas": "1",
        "max.message.bytes": "1048588",  # not managed: the broker's default
    }
    assert dlq.configs["retention.ms"] == str(14 * 24 * 3600 * 1000)
    # A DLQ takes a record at its source's limit plus the dlq-* headers.
    assert dlq.configs["max.message.bytes"] == str(1048588 + 64 * 1024)

    again = run_cli("topics", "apply", env=env)
    assert again.returncode == 0
    assert "applied: 0 topic(s) changed" in again.stderr

    listed = run_cli("topics", "list", env=env)
    assert listed.returncode == 0
    assert unique + "samples.dlq" in listed.stdout
    described = run_cli("topics", "describe", "samples", env=env)
    assert described.returncode == 0
    assert "in msgpack, keyed by 'entity_id'" in described.stdout
    assert "retention.ms = 3600000" in described.stdout


async def test_grow_partitions_and_update_config(settings: PipelineSettings, unique: str) -> None:
    assert run_cli("topics", "apply", env=cli_env(settings, unique, "v1")).returncode == 0
    # An operator's configs, set out of band, that the catalogue does not manage.
    async with TopicsOnCluster(connect(settings)) as topics:
        errors = await topics.admin.set_topic_configs(
            {unique + "samples": {"segment.ms": "3600000", "max.message.bytes": "2097152"}},
        )
    assert errors == {unique + "samples": None}
    grown = run_cli("topics", "apply", env=cli_env(settings, unique, "grown"))
    assert grown.returncode == 0, grown.stderr
    assert "partitions 4 → 6" in grown.stdout
    assert "retention.ms 3600000 → 7200000" in grown.stdout
    topic = (await observe(settings, unique + "samples"))[unique + "samples"]
    assert topic.partitions == 6
    assert topic.configs["retention.ms"] == "7200000"
    async with TopicsOnCluster(connect(settings)) as admin:
        configs = (await admin.configs([unique + "samples"]))[unique + "samples"]
    assert configs["segment.ms"] == "3600000", "apply reset a config it does not manage"
    assert configs["max.message.bytes"] == "2097152", "apply reset a config it does not manage"


async def test_fewer_partitions_is_refused_and_nothing_changes(
    settings: PipelineSettings, unique: str
) -> None:
    assert run_cli("topics", "apply", env=cli_env(settings, unique, "v1")).returncode == 0
    refused = run_cli("topics", "apply", env=cli_env(settings, unique, "shrunk"))
    assert refused.returncode == 1
    message = " ".join(refused.stderr.split())
    assert (
        f"topic '{unique}samples' has 4 partitions on the cluster and 2 in the catalogue. "
        "Kafka cannot remove partitions." in message
    )
    assert "nothing was changed" in message
    topic = (await observe(settings, unique + "samples"))[unique + "samples"]
    assert topic.partitions == 4
    assert topic.configs["retention.ms"] == "3600000"


async def test_changing_the_key_is_refused(settings: PipelineSettings, unique: str) -> None:
    assert run_cli("topics", "apply", env=cli_env(settings, unique, "v1")).returncode == 0
    refused = run_cli("topics", "apply", env=cli_env(settings, unique, "rekeyed"))
    assert refused.returncode == 1
    message = " ".join(refused.stderr.split())
    assert (
        f"topic '{unique}samples' was applied keyed by 'entity_id' "
        "and the catalogue now keys it by 'note'" in message
    )


async def test_an_incompatible_schema_is_refused_with_its_diff_and_nothing_changes(
    settings: PipelineSettings, unique: str
) -> None:
    assert run_cli("topics", "apply", env=cli_env(settings, unique, "v1")).returncode == 0
    refused = run_cli("topics", "apply", env=cli_env(settings, unique, "evolved_incompatible"))
    assert refused.returncode == 1
    message = refused.stderr
    assert f"topic '{unique}samples': schema v1 → v2 is not backward compatible" in message
    assert "total: is required by the reader and absent from events (renamed from 'amount'?)" in (
        " ".join(message.split())
    )
    assert "nothing was changed" in message
    async with TopicsOnCluster(connect(settings), unique) as admin:
        versions = registered_schemas(await admin.recorded())[unique + "samples"]
    assert [v.version for v in versions] == [1]

    # A compatible change is registered as version 2; describe lists both.
    compatible = run_cli("topics", "apply", env=cli_env(settings, unique, "evolved_compatible"))
    assert compatible.returncode == 0, compatible.stderr
    assert "schema v1 → v2 (backward compatible)" in " ".join(compatible.stdout.split())
    described = run_cli(
        "topics", "describe", "samples", env=cli_env(settings, unique, "evolved_compatible")
    )
    assert "schema versions registered: v1, v2" in " ".join(described.stdout.split())

    # The operator may override, with the diff as a warning.
    forced = run_cli(
        "topics",
        "apply",
        "--allow-incompatible",
        env=cli_env(settings, unique, "evolved_incompatible"),
    )
    assert forced.returncode == 0, forced.stderr
    assert "applied anyway (--allow-incompatible)" in " ".join(forced.stderr.split())


def test_describe_unknown_topic_says_what_exists(settings: PipelineSettings, unique: str) -> None:
    result = run_cli("topics", "describe", "nope", env=cli_env(settings, unique, "v1"))
    assert result.returncode == 2
    assert "unknown topic 'nope'" in result.stderr
    assert "Known topics: samples" in result.stderr


async def test_apply_creates_the_changelogs_of_the_stateful_processors(
    settings: PipelineSettings, unique: str
) -> None:
    env = {
        **cli_env(settings, unique, "counted"),
        "PIPELINE_PROCESSORS_MODULE": "tests.integration.processors",
    }
    changelogs = [unique + "counter-counts-changelog", unique + "counter_eos-counts-changelog"]
    dry = run_cli("topics", "apply", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    # On a cluster without the source yet, the dry run says it cannot size them.
    assert "changelogs of 'counter'" in dry.stderr and "does not exist" in dry.stderr
    assert await observe(settings, *changelogs) == {}
    applied = run_cli("topics", "apply", env=env)
    assert applied.returncode == 0, applied.stderr
    assert f"created changelog {changelogs[0]}" in applied.stderr
    deadline = time.monotonic() + 10
    while set(topics := await observe(settings, *changelogs)) != set(changelogs):
        assert time.monotonic() < deadline, f"only {sorted(topics)} in the cluster's metadata"
        await asyncio.sleep(0.2)  # a topic just created reaches every broker's metadata soon
    for observed in topics.values():
        assert observed.partitions == 12, "a changelog has its source's partitions"
        assert observed.configs["cleanup.policy"] == "compact"
        assert observed.configs["retention.ms"] == "-1"
    again = run_cli("topics", "apply", env=env)
    assert again.returncode == 0, again.stderr
    assert "created changelog" not in again.stderr


async def test_apply_sets_the_share_groups_of_the_queue_processors(
    settings: PipelineSettings, unique: str
) -> None:
    """Kafka starts a share group at the partitions' ends: records published before apply
    would never reach a queue-mode processor. After apply, a member gets them all."""
    env = {
        **cli_env(settings, unique, "queued"),
        "PIPELINE_PROCESSORS_MODULE": "tests.integration.processors",
    }
    dry = run_cli("topics", "apply", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert f"would set share group {unique}mailer: share.auto.offset.reset=earliest" in (
        " ".join(dry.stderr.split())
    )
    applied = run_cli("topics", "apply", env=env)
    assert applied.returncode == 0, applied.stderr
    said = " ".join(applied.stderr.split())
    for group in ("mailer", "slow_mailer"):
        assert f"set share group {unique}{group}: share.auto.offset.reset=earliest" in said
    assert "share.record.lock.duration.ms=15000, share.delivery.count.limit=10" in said
    source = QUEUE_SOURCE.with_name(unique + QUEUE_SOURCE.name)
    async with EventProducer(settings) as producer:
        await producer.publish_many(source, [Keyed(key=f"k{n}", seq=n) for n in range(30)])
    shared = connect(settings.model_copy(update={"client": "confluent"}))
    member = shared.share_consumer(ShareOptions(unique + "mailer", max_records=100))
    await member.start()
    try:
        await member.subscribe([source.name])
        taken: list[int] = []
        deadline = time.monotonic() + 60
        while len(taken) < 30:
            assert time.monotonic() < deadline, f"{len(taken)} of 30 records delivered"
            for record in await member.poll(1.0):
                taken.append(record.offset)
                await member.acknowledge(record, "accept")
        assert len(taken) == 30
    finally:
        await member.stop()
