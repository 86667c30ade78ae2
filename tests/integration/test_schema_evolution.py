"""Schema evolution of an avro topic through the real command line and a real registry.

`topics apply --dry-run` registers nothing; `topics apply` registers v1; a
backward-compatible v2 passes `schemas check`, is registered, and reads the
records v1 wrote; an incompatible v3 is refused by `schemas check` and by
`topics apply`, naming the field, with nothing changed: no version
registered and no topic created.
"""

from __future__ import annotations

from decimal import Decimal

from confluent_kafka.schema_registry import SchemaRegistryClient

from pipeline.kafka.connect import connect
from pipeline.publishing.producer import EventProducer
from pipeline.settings import PipelineSettings
from pipeline.wire.codec import decode_value
from pipeline.wire.registry import SchemaRegistry, use_registry
from tests.integration.catalogues.avro_accounts import V1, V2, AccountV1, AccountV2
from tests.integration.test_topics_cli import observe
from tests.support import read_all, run_cli


def env_for(settings: PipelineSettings, unique: str, registry: str, version: int) -> dict[str, str]:
    return {
        "PIPELINE_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "PIPELINE_TOPIC_PREFIX": unique,
        "PIPELINE_CATALOGUE_MODULE": f"tests.integration.catalogues.avro_v{version}",
        "PIPELINE_SCHEMA_REGISTRY__URL": registry,
    }


async def test_an_avro_topic_evolves_compatibly_and_an_incompatible_change_is_refused(
    settings: PipelineSettings, unique: str, schema_registry: str
) -> None:
    subject = f"{unique}accounts-value"
    client = SchemaRegistryClient({"url": schema_registry})

    dry = run_cli("topics", "apply", "--dry-run", env=env_for(settings, unique, schema_registry, 1))
    assert dry.returncode == 0, dry.stderr
    assert "register" in dry.stdout and "1 schema(s) would be registered" in dry.stderr
    assert subject not in client.get_subjects()

    applied = run_cli("topics", "apply", env=env_for(settings, unique, schema_registry, 1))
    assert applied.returncode == 0, applied.stderr
    assert client.get_versions(subject) == [1]
    assert client.get_compatibility(subject) == "BACKWARD"

    v1 = V1.with_prefix(unique).get("accounts")
    previous = use_registry(SchemaRegistry(client, schema_registry, auto_register=False))
    try:
        async with EventProducer(settings) as producer:
            await producer.publish(v1, AccountV1(account_id="a1", balance=Decimal("3.50")))

        checked = run_cli("schemas", "check", env=env_for(settings, unique, schema_registry, 2))
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "register" in checked.stdout
        assert (
            run_cli("topics", "apply", env=env_for(settings, unique, schema_registry, 2)).returncode
            == 0
        )
        assert client.get_versions(subject) == [1, 2]
        v2 = V2.with_prefix(unique).get("accounts")
        [old] = await read_all(connect(settings), v1.name)
        assert decode_value(v2, old.value) == AccountV2(
            account_id="a1", balance=Decimal("3.50"), currency="EUR"
        )
    finally:
        use_registry(previous)

    refused = run_cli("schemas", "check", env=env_for(settings, unique, schema_registry, 3))
    assert refused.returncode == 1
    assert "'owner' was added without a default" in refused.stdout
    not_applied = run_cli("topics", "apply", env=env_for(settings, unique, schema_registry, 3))
    assert not_applied.returncode == 1
    assert "nothing was changed" in not_applied.stderr
    assert client.get_versions(subject) == [1, 2], "no version registered"
    assert await observe(settings, unique + "audit") == {}, "no topic created"
