"""Synchronous questions to a cluster, for CLI commands and test fixtures."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient

from pipeline.kafka.aiokafka.config import client_kwargs
from pipeline.settings import PipelineSettings

T = TypeVar("T")


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion even if the caller sits inside a loop.

    Sync fixtures run inside pytest-asyncio's loop in some orders of
    execution, where asyncio.run() refuses; a helper thread has no loop.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def _live_broker_count(bootstrap: str, settings: PipelineSettings | None) -> int:
    # aiokafka logs every refused connection; while a broker boots that is noise.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    connection = client_kwargs(settings) if settings is not None else {}
    connection["bootstrap_servers"] = bootstrap
    admin = AIOKafkaAdminClient(request_timeout_ms=5000, **connection)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        return len(cluster["brokers"])
    finally:
        await admin.close()


def live_broker_count(bootstrap: str, settings: PipelineSettings | None = None) -> int:
    """Brokers the cluster's metadata lists; `settings` for a secured cluster's credentials."""
    return run_sync(_live_broker_count(bootstrap, settings))
