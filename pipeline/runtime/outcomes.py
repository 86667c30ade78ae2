"""What ends a batch's handling early without being a failure."""

from __future__ import annotations


class Abandoned(Exception):
    """The partition is being revoked or the worker stops: leave this batch unfinished."""
