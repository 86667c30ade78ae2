"""Log lines about records, at most so many per interval, with a count of the rest.

One line per dead-lettered or retried record is what an operator needs to
find it; a flood of bad input must not drown the log (or the disk) in them.
Past `per_interval` lines in an interval, lines are counted instead, and the
next line after the interval (or `flush`) says how many were left out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RateLimitedLog:
    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        per_interval: int = 20,
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.what = what
        """Names the lines in the summary: "dead-lettered records"."""
        self.per_interval = per_interval
        self.interval_s = interval_s
        self._clock = clock
        self._window_start = clock()
        self._logged = 0
        self.suppressed = 0
        self.suppressed_total = 0

    def log(self, level: int, message: str, *args: object) -> None:
        self.tick()
        if self._logged < self.per_interval:
            self._logged += 1
            self.logger.log(level, message, *args)
        else:
            self.suppressed += 1
            self.suppressed_total += 1

    def tick(self) -> None:
        """Close the interval when it is over; call it now and then so a summary is not late."""
        now = self._clock()
        if now - self._window_start >= self.interval_s:
            self._close(now)

    def flush(self) -> None:
        """The summary now (on shutdown), whether or not the interval is over."""
        self._close(self._clock())

    def _close(self, now: float) -> None:
        if self.suppressed:
            self.logger.warning(
                "%d more %s not logged in the last %.0fs (their metrics count them all)",
                self.suppressed,
                self.what,
                now - self._window_start,
            )
            self.suppressed = 0
        self._window_start = now
        self._logged = 0
