"""Counters and gauges in Prometheus text format, without a client library.

A worker exports a few dozen series; a dict per metric and a text renderer
are all that takes, and they cost a dict update on the hot path.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

Labels = tuple[tuple[str, str], ...]


def _labels(labels: dict[str, str] | None) -> Labels:
    return tuple(sorted((labels or {}).items()))


class Metrics:
    def __init__(self, prefix: str = "pipeline") -> None:
        self.prefix = prefix
        self._counters: dict[str, dict[Labels, float]] = defaultdict(lambda: defaultdict(float))
        self._gauges: dict[str, Callable[[], dict[Labels, float]]] = {}
        self._help: dict[str, str] = {}

    def inc(self, name: str, amount: float = 1.0, labels: dict[str, str] | None = None) -> None:
        self._counters[name][_labels(labels)] += amount

    def gauge(self, name: str, read: Callable[[], dict[Labels, float]], help_text: str) -> None:
        """Register a gauge read when /metrics is scraped."""
        self._gauges[name] = read
        self._help[name] = help_text

    def render(self) -> str:
        lines: list[str] = []
        for name, series in sorted(self._counters.items()):
            full = f"{self.prefix}_{name}_total"
            lines.append(f"# HELP {full} {self._help.get(name, name)}")
            lines.append(f"# TYPE {full} counter")
            lines.extend(f"{full}{_format(labels)} {value:g}" for labels, value in series.items())
        for name, read in sorted(self._gauges.items()):
            full = f"{self.prefix}_{name}"
            lines.append(f"# HELP {full} {self._help.get(name, name)}")
            lines.append(f"# TYPE {full} gauge")
            lines.extend(f"{full}{_format(labels)} {value:g}" for labels, value in read().items())
        return "\n".join(lines) + "\n"


def labels_of(**labels: object) -> Labels:
    return tuple(sorted((key, str(value)) for key, value in labels.items()))


def _format(labels: Labels) -> str:
    if not labels:
        return ""
    escaped = ",".join(
        f'{key}="{value.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for key, value in labels
    )
    return "{" + escaped + "}"
