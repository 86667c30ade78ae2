"""A replica of any processor: a stream worker or a queue worker, opened by its delivery.

What starts one (`pipeline worker`, TestPipeline) needs only what both
have: run it, stop it, ask whether it is ready and what it holds.
"""

from __future__ import annotations

from typing import Any

from pipeline.kafka.port import Clients
from pipeline.processor import Processor
from pipeline.runtime.opening import StopSwitch
from pipeline.runtime.options import WorkerOptions
from pipeline.runtime.queue_worker import QueueRuntime
from pipeline.runtime.worker import Runtime
from pipeline.settings import PipelineSettings

Replica = Runtime | QueueRuntime


async def open_worker(
    settings: PipelineSettings,
    processor: Processor[Any],
    options: WorkerOptions,
    clients: Clients,
    switch: StopSwitch | None = None,
) -> Replica | None:
    """The replica, opened; None when stopped first (`switch.exit_code` says how)."""
    if processor.delivery == "queue":
        return await QueueRuntime.open(settings, processor, options, clients, switch)
    return await Runtime.open(settings, processor, options, clients, switch=switch)
