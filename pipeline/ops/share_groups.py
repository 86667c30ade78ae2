"""A queue-mode processor's share group, configured before its first member joins.

A share group starts at the partitions' ends unless its configs say
earliest: records published before the first replica joined would never
be delivered. So every replica sets the configs as it opens (setting the
same values again is harmless), and `pipeline topics apply` sets them
with the topics.
"""

from __future__ import annotations

from typing import Any

from pipeline.errors import ConfigError
from pipeline.kafka.port import Clients
from pipeline.processor import Processor
from pipeline.queue_delivery import share_group_configs


async def configure_share_group(clients: Clients, processor: Processor[Any], group: str) -> None:
    """Set the group's start, record lock and delivery limit; ConfigError if refused."""
    if processor.delivery != "queue":
        return
    admin = clients.admin()
    await admin.start()
    try:
        configs = share_group_configs(processor)
        refused = await admin.set_group_configs(group, configs)
    finally:
        await admin.stop()
    if refused:
        raise ConfigError(
            f"share group {group!r} of processor {processor.name!r}: the cluster refused its "
            f"configs {dict(configs)}: {refused}. Share groups need Kafka 4.2 or later with "
            "share.version=1 (`kafka-features.sh --bootstrap-server HOST:PORT upgrade "
            "--feature share.version=1`)"
        )
