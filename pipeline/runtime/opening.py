"""What a replica needs before it joins its group, opened whole before the Runtime exists.

The pool, the tables (caught up), the outputs' size limits on the cluster
and their schemas: a Runtime is built from them (`Runtime.open`), so none
of its members is a stand-in replaced later, and a partition worker never
meets a half-made replica. Opening can take a while (a table catching up),
so the stop switch, the signals and the health server are up from its
first moment: a SIGTERM meanwhile ends the opening, a probe meanwhile hears
"alive, not ready".
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.kafka.port import Clients
from pipeline.metrics import Metrics
from pipeline.ops.changelogs import ensure_changelogs
from pipeline.ops.share_groups import configure_share_group
from pipeline.processor import Processor
from pipeline.resilience.breaker import BreakerRegistry
from pipeline.runtime.health import HealthServer
from pipeline.runtime.options import WorkerOptions
from pipeline.runtime.output_topics import message_limits, prepare_schemas
from pipeline.runtime.record_path import RecordPath
from pipeline.settings import PipelineSettings
from pipeline.stores.services import Services, default_cache_root, open_services
from pipeline.wire.registry import configure_registry

if TYPE_CHECKING:
    from pipeline.ops.replay import ReplayPlan

log = logging.getLogger("pipeline.worker")

EXIT_OK = 0
EXIT_DRAIN_INCOMPLETE = 3
EXIT_FAILED = 4


class StopSwitch:
    """How a replica is asked to stop, and why it stopped: one for its opening and its run."""

    def __init__(self) -> None:
        self.requested = asyncio.Event()
        self.failure: str | None = None
        """Set by `fail`: what no retry can mend (the replica exits EXIT_FAILED)."""
        self.signalled = False

    def fail(self, reason: str) -> None:
        self.failure = reason
        self.requested.set()

    def request_stop(self) -> None:
        log.info("stop requested: draining, committing, leaving the group")
        self.requested.set()

    def on_signal(self) -> None:
        self.signalled = True
        self.request_stop()

    @property
    def exit_code(self) -> int:
        """A replica that stopped before it ran: failed, or asked to."""
        return EXIT_FAILED if self.failure else EXIT_OK


@dataclass
class Starting:
    """What the health server reports while the replica opens: alive, not ready."""

    metrics: Metrics

    @property
    def ready(self) -> bool:
        return False

    def live(self) -> tuple[bool, str]:
        return True, "opening: the pool and tables are not ready yet"


@dataclass(frozen=True)
class Opened:
    """Everything `Runtime` takes that needs a broker, a database or time to make."""

    switch: StopSwitch
    metrics: Metrics
    breakers: BreakerRegistry
    services: Services
    record_path: RecordPath
    health: HealthServer | None


def group_of(processor: Processor[Any], replay: ReplayPlan | None) -> str:
    """A replay consumes in a group of its own, never the live one."""
    return replay.group if replay else processor.group_id


async def open_replica(
    settings: PipelineSettings,
    processor: Processor[Any],
    options: WorkerOptions,
    clients: Clients,
    replay: ReplayPlan | None,
    switch: StopSwitch,
) -> Opened | None:
    """The opened parts; None when stopped (or failed: see the switch) before they were ready.

    The settings' schema registry becomes the process's first of all: tables over a
    registry-format topic decode with it, and the outputs' schemas are registered there.
    (Before the worker opened whole, only the producer's construction did it, by chance
    early enough.)
    """
    configure_registry(settings.schema_registry)
    if options.handle_signals:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, switch.on_signal)
    metrics = Metrics()
    breakers = BreakerRegistry(processor.dependencies)
    health = None
    if options.health_port is not None:
        health = HealthServer(Starting(metrics), options.health_port, options.health_host)
        await health.start()
    opened = None
    try:
        services = await _unless_stopped(
            open_services(
                settings,
                clients,
                processor.name,
                group_of(processor, replay),
                options.replica_id,
                processor.tables,
                processor.database,
                metrics,
                breakers,
                switch.fail,
                options.cache_dir or default_cache_root(),
            ),
            switch,
        )
        if services is None:
            return None
        try:
            limits = await message_limits(clients, processor)
            await ensure_changelogs(clients, processor, group_of(processor, replay))
            if replay is None:  # a replay reads its range in a consumer group of its own
                await configure_share_group(clients, processor, processor.group_id)
            await prepare_schemas(processor, switch.requested)
            if switch.requested.is_set():
                log.info("stopped while opening: not joining the group")
                await services.close()
                return None
        except BaseException:
            await services.close()
            raise
        record_path = RecordPath(processor, group_of(processor, replay), settings.envelope, limits)
        opened = Opened(switch, metrics, breakers, services, record_path, health)
        return opened
    finally:
        if opened is None and health is not None:
            await health.stop()  # the runtime would have stopped it; there is none


async def _unless_stopped(
    opening_services: Awaitable[Services], switch: StopSwitch
) -> Services | None:
    """The pool and tables; tables can take a while to catch up, and a SIGTERM meanwhile
    just ends the opening."""
    opening = asyncio.ensure_future(opening_services)
    stop_waiter = asyncio.ensure_future(switch.requested.wait())
    await asyncio.wait([opening, stop_waiter], return_when=asyncio.FIRST_COMPLETED)
    stop_waiter.cancel()
    if not opening.done():
        opening.cancel()
        await asyncio.gather(opening, return_exceptions=True)
        log.info("stopped before the pool and tables were ready")
        return None
    return opening.result()
