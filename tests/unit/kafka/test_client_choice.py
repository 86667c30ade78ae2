"""Which client a process uses, and what the confluent adapter asks of librdkafka."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pipeline.kafka.aiokafka.clients import AioClients
from pipeline.kafka.confluent.clients import ConfluentClients
from pipeline.kafka.confluent.config import consumer_config, producer_config
from pipeline.kafka.confluent.producer import ConfluentBatch
from pipeline.kafka.connect import connect
from pipeline.kafka.port import ConsumerOptions, ProducerOptions
from pipeline.settings import PipelineSettings


def test_the_setting_picks_the_adapter() -> None:
    assert isinstance(connect(PipelineSettings()), AioClients)
    assert isinstance(connect(PipelineSettings(client="confluent")), ConfluentClients)


def test_incremental_rebalances_are_refused_on_aiokafka_naming_both_settings() -> None:
    with pytest.raises(ValidationError, match="PIPELINE_CLIENT=confluent"):
        PipelineSettings(rebalance_protocol="cooperative")


@pytest.mark.parametrize(
    ("protocol", "strategy"), [("eager", "roundrobin"), ("cooperative", "cooperative-sticky")]
)
def test_classic_protocols_name_their_assignor(protocol: str, strategy: str) -> None:
    settings = PipelineSettings(client="confluent", rebalance_protocol=protocol)  # type: ignore[arg-type]
    config = consumer_config(settings, ConsumerOptions(group_id="g", session_timeout_ms=9000))
    assert config["partition.assignment.strategy"] == strategy
    assert config["session.timeout.ms"] == 9000
    assert config["enable.auto.commit"] is False


def test_kip_848_leaves_session_and_assignor_to_the_broker() -> None:
    settings = PipelineSettings(client="confluent", rebalance_protocol="consumer")
    config = consumer_config(settings, ConsumerOptions(group_id="g"))
    assert config["group.protocol"] == "consumer"
    assert "session.timeout.ms" not in config and "partition.assignment.strategy" not in config


def test_librdkafka_prefetches_one_fetch_per_partition_as_the_runtime_sizes_it() -> None:
    settings = PipelineSettings(client="confluent")
    sized = ConsumerOptions(group_id="g", max_partition_fetch_bytes=2 * 1024 * 1024)
    assert consumer_config(settings, sized)["queued.max.messages.kbytes"] == 2048
    tiny = ConsumerOptions(group_id="g", max_partition_fetch_bytes=10_000)
    assert consumer_config(settings, tiny)["queued.max.messages.kbytes"] == 256
    # and a full prefetch is refilled soon, not after librdkafka's default second
    assert consumer_config(settings, sized)["fetch.queue.backoff.ms"] < 100


def test_a_transactional_producer_delivers_within_its_transaction_timeout() -> None:
    options = ProducerOptions(
        transactional_id="t", request_timeout_ms=30_000, transaction_timeout_ms=15_000
    )
    config = producer_config(PipelineSettings(client="confluent"), options)
    assert config["enable.idempotence"] is True and config["acks"] == "all"
    assert config["message.timeout.ms"] == 15_000  # librdkafka refuses more than the txn timeout


def test_a_confluent_batch_is_full_at_its_limit_but_never_for_its_first_record() -> None:
    batch = ConfluentBatch(limit=200)
    assert batch.append(b"k", b"x" * 500, None, [])  # the broker judges a lone record
    assert not batch.append(b"k", b"y", None, [])
    small = ConfluentBatch(limit=200)
    assert small.append(b"k", b"v", 5, [("h", None)])
    assert small.rows == [(b"k", b"v", 5, [("h", None)])]
