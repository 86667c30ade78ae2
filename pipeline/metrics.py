"""Counters and gauges in Prometheus text format, without a client library.

A worker exports a few dozen series; a dict per metric and a text renderer
are all that takes, and they cost a dict update on the hot path.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from pipeline.metric_names import MetricName

Labels = tuple[tuple[str, str], ...]
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _labels(labels: dict[str, str] | None) -> Labels:
    return tuple(sorted((labels or {}).items()))


class Metrics:
    def __init__(self, prefix: str = "pipeline") -> None:
        self.prefix = prefix
        self._counters: dict[str, dict[Labels, float]] = defaultdict(lambda: defaultdict(float))
        # Several sources may feed one name (e.g. one per cache), each with its own labels.
        self._gauges: dict[str, list[Callable[[], dict[Labels, float]]]] = defaultdict(list)
        self._counter_sources: dict[str, list[Callable[[], dict[Labels, float]]]] = defaultdict(
            list
        )
        self._help: dict[str, str] = {}
        self._histograms: dict[str, dict[Labels, list[float]]] = {}
        self._buckets: dict[str, tuple[float, ...]] = {}

    def inc(
        self, name: MetricName, amount: float = 1.0, labels: dict[str, str] | None = None
    ) -> None:
        self._counters[name][_labels(labels)] += amount

    def observe(
        self,
        name: MetricName,
        value: float,
        labels: dict[str, str] | None = None,
        buckets: tuple[float, ...] = LATENCY_BUCKETS_S,
    ) -> None:
        """One sample of a histogram (request latency): cumulative buckets, sum and count."""
        key = _labels(labels)
        series = self._histograms.setdefault(name, {})
        counts = series.get(key)
        if counts is None:
            counts = series[key] = [0.0] * (len(buckets) + 2)  # buckets, +Inf, sum
            self._buckets[name] = buckets
        for index, bound in enumerate(buckets):
            if value <= bound:
                counts[index] += 1
        counts[-2] += 1
        counts[-1] += value

    def total(self, name: MetricName) -> float:
        """A counter summed over its labels (what a report at the end of a run shows)."""
        return sum(self._counters.get(name, {}).values())

    def counters_from(
        self, name: MetricName, read: Callable[[], dict[Labels, float]], help_text: str
    ) -> None:
        """Counters kept elsewhere (a hot path's plain ints), read when /metrics is scraped."""
        self._counter_sources[name].append(read)
        self._help[name] = help_text

    def gauge(
        self, name: MetricName, read: Callable[[], dict[Labels, float]], help_text: str
    ) -> None:
        """Register a gauge read when /metrics is scraped."""
        self._gauges[name].append(read)
        self._help[name] = help_text

    def render(self) -> str:
        lines: list[str] = []
        counters = {name: dict(series) for name, series in self._counters.items()}
        for name, reads in self._counter_sources.items():
            for read in reads:
                for labels, value in read().items():
                    counters.setdefault(name, {})[labels] = value
        for name, series in sorted(counters.items()):
            full = f"{self.prefix}_{name}_total"
            lines.append(f"# HELP {full} {self._help.get(name, name)}")
            lines.append(f"# TYPE {full} counter")
            lines.extend(f"{full}{_format(labels)} {value:g}" for labels, value in series.items())
        for name, reads in sorted(self._gauges.items()):
            full = f"{self.prefix}_{name}"
            lines.append(f"# HELP {full} {self._help.get(name, name)}")
            lines.append(f"# TYPE {full} gauge")
            for read in reads:
                lines.extend(
                    f"{full}{_format(labels)} {value:g}" for labels, value in read().items()
                )
        for name, histogram in sorted(self._histograms.items()):
            full = f"{self.prefix}_{name}"
            lines.append(f"# HELP {full} {self._help.get(name, name)}")
            lines.append(f"# TYPE {full} histogram")
            for labels, counts in histogram.items():
                for bound, count in zip(self._buckets[name], counts, strict=False):
                    bucket = (*labels, ("le", f"{bound:g}"))
                    lines.append(f"{full}_bucket{_format(bucket)} {count:g}")
                lines.append(f"{full}_bucket{_format((*labels, ('le', '+Inf')))} {counts[-2]:g}")
                lines.append(f"{full}_sum{_format(labels)} {counts[-1]:g}")
                lines.append(f"{full}_count{_format(labels)} {counts[-2]:g}")
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
