"""A cluster without share groups is named as such, with what to do (not a bare protocol error)."""

from __future__ import annotations

from pipeline.kafka.confluent.share_consumer import unsupported_by_the_cluster
from pipeline.kafka.port import KafkaClientError, ShareGroupsUnsupported

SEEN_ON_KAFKA_4_4 = (
    "UNSUPPORTED_VERSION: ShareGroupHeartbeat fatal error: Broker: API version not supported"
)
"""What the member's poll raised on a 4.4 cluster formatted with share.version=0."""


def test_the_heartbeat_refused_names_the_feature_and_the_command() -> None:
    found = unsupported_by_the_cluster(KafkaClientError(SEEN_ON_KAFKA_4_4), "mail", "h:9092")
    assert isinstance(found, ShareGroupsUnsupported)
    assert "share group 'mail'" in str(found)
    assert "upgrade --feature share.version=1" in str(found)
    assert "--bootstrap-server h:9092" in str(found)


def test_other_errors_pass_unchanged() -> None:
    other = KafkaClientError("UNSUPPORTED_VERSION: Fetch: Broker: API version not supported")
    assert unsupported_by_the_cluster(other, "mail", "h:9092") is other
