"""The changelog topics of a processor's stores: created when missing, checked when present.

A store's changes for source partition N go to partition N of its
changelog, so the changelog must have exactly the source's partition
count: with fewer, a partition's state would land in another's log; with
more, nothing reads the rest. Compacted, since only the last value of each
key is state; never deleted by time, since the changelog is the store.
`pipeline topics apply` creates them for the declared processors, and a
worker creates its own at start (a replay's group has changelogs of its
own, which nobody declares ahead).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pipeline.errors import ConfigError, PipelineError
from pipeline.kafka.port import Clients, NewTopic

if TYPE_CHECKING:
    from pipeline.processor import Processor

log = logging.getLogger("pipeline.ops")

CHANGELOG_CONFIGS = {"cleanup.policy": "compact", "retention.ms": "-1"}
MAX_REPLICATION = 3


async def ensure_changelogs(
    clients: Clients, processor: Processor[Any], group: str, create: bool = True
) -> list[str]:
    """Create the missing changelogs of `processor`'s stores for `group`; the names missing
    (created, unless `create` is False: a dry run).

    Raises ConfigError when a changelog exists with another partition count
    than the source, or the source is missing.
    """
    if not processor.state_stores:
        return []
    source = processor.source.name
    names = [store.changelog(group) for store in processor.state_stores]
    admin = clients.admin()
    await admin.start()
    try:
        layouts = await admin.describe_topics([source, *names])
        if source not in layouts:
            raise ConfigError(
                f"the source topic {source!r} of processor {processor.name!r} does not exist; "
                "create it with `pipeline topics apply` before the changelogs can be sized"
            )
        partitions = len(layouts[source])
        for name in names:
            found = layouts.get(name)
            if found is not None and len(found) != partitions:
                raise ConfigError(
                    f"changelog {name!r} has {len(found)} partitions and its source "
                    f"{source!r} has {partitions}: partition N's state must go to partition "
                    f"N of its changelog. Delete {name!r} (the stores rebuild from the "
                    "source only by a replay) or give the store a new name"
                )
        missing = [name for name in names if name not in layouts]
        if not missing or not create:
            return missing
        replication = min(MAX_REPLICATION, await admin.broker_count())
        configs = {**CHANGELOG_CONFIGS, "min.insync.replicas": str(min(2, replication))}
        answers = await admin.create_topics(
            [NewTopic(name, partitions, replication, dict(configs)) for name in missing]
        )
        refused = {name: why for name, why in answers.items() if why}
        if refused:
            raise PipelineError(
                "could not create changelog topic(s): "
                + "; ".join(f"{name}: {why}" for name, why in sorted(refused.items()))
            )
        log.info("created changelog topic(s) %s (%d partitions, compacted)", missing, partitions)
        return missing
    finally:
        await admin.stop()
