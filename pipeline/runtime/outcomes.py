"""What ends a batch's handling early without being a failure.

`Abandoned` is the wait helper's: a partition's batch and a dependency wait
are called off by the same stop, so one exception ends both.
"""

from __future__ import annotations

from pipeline.resilience.waiting import Abandoned

__all__ = ["Abandoned"]
