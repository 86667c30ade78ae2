"""The event pipeline's public API: what an application imports, and all it needs to.

    from pipeline import Processor, TopicSpec, Context, TestPipeline

Everything named in `__all__` is the supported surface, documented in the API
reference (docs/reference/api.md) and kept compatible. Every other module of
the package is internal and may change between releases; docs/design.md has
their shape and promises.

The names are loaded on first use, so `import pipeline.cli` or a process-pool
worker pays only for what it touches, not for the whole runtime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_HOMES = {
    "TopicSpec": "pipeline.catalogue",
    "Catalogue": "pipeline.catalogue",
    "RawRecord": "pipeline.wire.formats",
    "Change": "pipeline.wire.change_events",
    "Processor": "pipeline.processor",
    "Context": "pipeline.processor",
    "Emit": "pipeline.processor",
    "Sink": "pipeline.processor",
    "ToSink": "pipeline.processor",
    "PermanentError": "pipeline.processor",
    "HandlerTimeout": "pipeline.processor",
    "PipelineError": "pipeline.errors",
    "ConfigError": "pipeline.errors",
    "DependencyUnavailable": "pipeline.resilience.breaker",
    "BreakerPolicy": "pipeline.resilience.breaker",
    "RetryPolicy": "pipeline.resilience.retry",
    "FloodGuardPolicy": "pipeline.resilience.flood_guard",
    "QueuePolicy": "pipeline.queue_policy",
    "Table": "pipeline.stores.table",
    "Store": "pipeline.stores.store_spec",
    "Window": "pipeline.stores.windows",
    "WindowResult": "pipeline.stores.windows",
    "Count": "pipeline.stores.windows",
    "Sum": "pipeline.stores.windows",
    "Min": "pipeline.stores.windows",
    "Max": "pipeline.stores.windows",
    "Mean": "pipeline.stores.windows",
    "Reduce": "pipeline.stores.windows",
    "LateEventError": "pipeline.stores.windows",
    "LoaderServices": "pipeline.stores.table",
    "EventProducer": "pipeline.publishing.producer",
    "Delivery": "pipeline.publishing.delivery",
    "PipelineSettings": "pipeline.settings",
    "load_settings": "pipeline.settings",
    "TestPipeline": "pipeline.testing",
    "DeadLetter": "pipeline.testing",
}

__all__ = [
    "BreakerPolicy",
    "Catalogue",
    "Change",
    "ConfigError",
    "Context",
    "Count",
    "DeadLetter",
    "Delivery",
    "DependencyUnavailable",
    "Emit",
    "EventProducer",
    "FloodGuardPolicy",
    "HandlerTimeout",
    "LateEventError",
    "LoaderServices",
    "Max",
    "Mean",
    "Min",
    "PermanentError",
    "PipelineError",
    "PipelineSettings",
    "Processor",
    "QueuePolicy",
    "RawRecord",
    "Reduce",
    "RetryPolicy",
    "Sink",
    "Store",
    "Sum",
    "Table",
    "TestPipeline",
    "ToSink",
    "TopicSpec",
    "Window",
    "WindowResult",
    "load_settings",
]

if TYPE_CHECKING:
    from pipeline.catalogue import Catalogue, TopicSpec
    from pipeline.errors import ConfigError, PipelineError
    from pipeline.processor import (
        Context,
        Emit,
        HandlerTimeout,
        PermanentError,
        Processor,
        Sink,
        ToSink,
    )
    from pipeline.publishing.delivery import Delivery
    from pipeline.publishing.producer import EventProducer
    from pipeline.queue_policy import QueuePolicy
    from pipeline.resilience.breaker import BreakerPolicy, DependencyUnavailable
    from pipeline.resilience.flood_guard import FloodGuardPolicy
    from pipeline.resilience.retry import RetryPolicy
    from pipeline.settings import PipelineSettings, load_settings
    from pipeline.stores.store_spec import Store
    from pipeline.stores.table import LoaderServices, Table
    from pipeline.stores.windows import (
        Count,
        LateEventError,
        Max,
        Mean,
        Min,
        Reduce,
        Sum,
        Window,
        WindowResult,
    )
    from pipeline.testing import DeadLetter, TestPipeline
    from pipeline.wire.change_events import Change
    from pipeline.wire.formats import RawRecord


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(
            f"module 'pipeline' has no attribute {name!r}; the public names are "
            f"{', '.join(__all__)} (the rest lives in submodules and is internal)"
        )
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
