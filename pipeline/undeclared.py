"""A name a handler used that its processor does not declare: the code's fault, not the event's.

Raised from the handler's context; the worker stops with it (naming what is
declared) instead of retrying and dead-lettering every record.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.errors import ConfigError

__all__ = ["UndeclaredDependencyError", "UndeclaredStoreError"]


def _listed(declared: Sequence[str]) -> str:
    return ", ".join(repr(name) for name in sorted(declared)) or "none"


class UndeclaredDependencyError(ConfigError):
    """`ctx.call` named a dependency the processor does not declare: a typo, not an outage.

    An undeclared name would get a breaker of its own with the default
    policy, and the declared breaker would never open; so the call is
    refused and the worker stops, naming the declared ones.
    """

    def __init__(self, processor: str, name: str, declared: Sequence[str]) -> None:
        self.name = name
        super().__init__(
            f"processor {processor!r} called dependency {name!r} through ctx.call, but declares "
            f"only {_listed(declared)}; fix the name or "
            f"add {name!r} to Processor(dependencies={{...}})"
        )


class UndeclaredStoreError(ConfigError):
    """`ctx.store` named a store the processor does not declare: the code's fault, so the
    worker stops, as for an undeclared dependency, instead of dead-lettering every record."""

    def __init__(self, processor: str, name: str, declared: Sequence[str]) -> None:
        self.name = name
        super().__init__(
            f"processor {processor!r} has no store {name!r} (declared: {_listed(declared)}); "
            f"fix the name or add Store({name!r}) to Processor(stores=...)"
        )
