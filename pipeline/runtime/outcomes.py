"""What ends a batch's handling early without being a failure.

`Abandoned` is the wait helper's: a partition's batch and a dependency wait
are called off by the same stop, so one exception ends both. `Released` is
queue mode's retry: the record goes back to its share group, to be
delivered again to any replica.
"""

from __future__ import annotations

from pipeline.resilience.waiting import Abandoned

__all__ = ["Abandoned", "Released"]


class Released(Exception):
    """The record failed and may be tried again: release it (its cause is the failure)."""
