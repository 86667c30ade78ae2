"""Counters, gauges and histograms through the standard Prometheus client.

Every process keeps its own `CollectorRegistry` (tests build many runtimes in
one interpreter; a global registry would make their names collide). Counters
and histograms are `prometheus_client` objects, so the gateway's uvicorn
workers can share them through the client's multi-process mode and one scrape
sums them. Gauges are read when scraped (a bulkhead's length, a breaker's
state), from callbacks. Each labelled child is looked up once and kept: an
increment on the hot path is a dict hit and a locked add, and the worker
counts per batch, not per record.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from pipeline.metric_names import CATALOGUE, MetricName

Labels = tuple[tuple[str, str], ...]
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""The client's own switch: set before the processes start, each writes its counters there."""

GaugeRead = Callable[[], dict[Labels, float]]

disable_created_metrics()  # type: ignore[no-untyped-call]  # a `_created` twin of every counter doubles a scrape for nothing


def _labels(labels: dict[str, str] | None) -> Labels:
    return tuple(sorted((labels or {}).items()))


def multiprocess_dir() -> str | None:
    """The folder the gateway's processes share, when it runs more than one."""
    return os.environ.get(MULTIPROCESS_ENV) or None


class _CallbackCollector(Collector):
    """Gauges and externally kept counters, read at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        prefix = self._metrics.prefix
        for name, reads in sorted(self._metrics.counter_sources.items()):
            counter = CounterMetricFamily(f"{prefix}_{name}", _help(name))
            counter.samples.extend(_read_samples(f"{prefix}_{name}_total", reads))
            yield counter
        for name, reads in sorted(self._metrics.gauges.items()):
            gauge = GaugeMetricFamily(f"{prefix}_{name}", _help(name))
            gauge.samples.extend(_read_samples(f"{prefix}_{name}", reads))
            yield gauge


def _read_samples(sample_name: str, reads: list[GaugeRead]) -> Iterator[Sample]:
    for read in reads:
        for labels, value in read().items():
            yield Sample(sample_name, dict(labels), value, None, None)


def _help(name: str) -> str:
    entry = CATALOGUE.get(name)  # type: ignore[call-overload]
    return str(entry[2]) if entry else name


class Metrics:
    """One process's metrics, rendered in Prometheus text format on /metrics."""

    def __init__(self, prefix: str = "pipeline") -> None:
        self.prefix = prefix
        self.registry = CollectorRegistry(auto_describe=False)
        self._multiprocess = multiprocess_dir()
        self._counters: dict[str, Counter] = {}
        self._histograms: dict[str, Histogram] = {}
        self._children: dict[tuple[str, Labels], Any] = {}
        self.gauges: dict[str, list[GaugeRead]] = defaultdict(list)
        self.counter_sources: dict[str, list[GaugeRead]] = defaultdict(list)
        self._shared_gauges: dict[str, Gauge] = {}
        self.registry.register(_CallbackCollector(self))
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    def inc(
        self, name: MetricName, amount: float = 1.0, labels: dict[str, str] | None = None
    ) -> None:
        key = (name, _labels(labels))
        child = self._children.get(key)
        if child is None:
            child = self._child(key, self._counter(name, key[1]))
        child.inc(amount)

    def counter_of(self, name: MetricName, label: str) -> Callable[[str], None]:
        """Count one of `name` with `label` set to the value given: a callback for parts that
        should not know the metrics."""
        return lambda value: self.inc(name, labels={label: value})

    def observe(
        self,
        name: MetricName,
        value: float,
        labels: dict[str, str] | None = None,
        buckets: tuple[float, ...] = LATENCY_BUCKETS_S,
    ) -> None:
        """One sample of a histogram (request latency, a batch's handling time)."""
        key = (name, _labels(labels))
        child = self._children.get(key)
        if child is None:
            histogram = self._histograms.get(name)
            if histogram is None:
                histogram = self._histograms[name] = Histogram(
                    f"{self.prefix}_{name}",
                    _help(name),
                    [k for k, _ in key[1]],
                    registry=self.registry,
                    buckets=buckets,
                )
            child = self._child(key, histogram)
        child.observe(value)

    def _counter(self, name: str, labels: Labels) -> Counter:
        counter = self._counters.get(name)
        if counter is None:
            counter = self._counters[name] = Counter(
                f"{self.prefix}_{name}",
                _help(name),
                [k for k, _ in labels],
                registry=self.registry,
            )
        return counter

    def _child(self, key: tuple[str, Labels], parent: Counter | Histogram) -> Any:
        labels = key[1]
        child = parent.labels(**dict(labels)) if labels else parent
        self._children[key] = child
        return child

    def total(self, name: MetricName) -> float:
        """A counter summed over its labels (what a report at the end of a run shows)."""
        value = 0.0
        counter = self._counters.get(name)
        if counter is not None:
            for family in counter.collect():
                value += sum(s.value for s in family.samples if s.name.endswith("_total"))
        for read in self.counter_sources.get(name, []):
            value += sum(read().values())
        return value

    def by_label(self, name: MetricName, label: str) -> dict[str, float]:
        """A counter summed per value of one of its labels (a test's or report's breakdown)."""
        values: dict[str, float] = {}
        counter = self._counters.get(name)
        for family in counter.collect() if counter is not None else ():
            for sample in family.samples:
                if sample.name.endswith("_total") and label in sample.labels:
                    key = sample.labels[label]
                    values[key] = values.get(key, 0.0) + sample.value
        return values

    def counters_from(self, name: MetricName, read: GaugeRead) -> None:
        """Counters kept elsewhere (a cache's plain ints), read when /metrics is scraped."""
        self.counter_sources[name].append(read)

    def gauge(self, name: MetricName, read: GaugeRead) -> None:
        """Register a gauge read when /metrics is scraped (its HELP comes from metric_names)."""
        self.gauges[name].append(read)

    def share_gauges(self) -> None:
        """Copy this process's gauges into the files the other processes read.

        Multi-process mode only: a callback cannot be called from another
        process, so each one writes its readings (kept per live process; the
        scrape reports the highest, the worst for a breaker's state).
        """
        if self._multiprocess is None:
            return
        for name, reads in self.gauges.items():
            readings: dict[Labels, float] = {}
            for read in reads:
                readings.update(read())
            shared = self._shared_gauges.get(name)
            for labels, value in readings.items():
                if shared is None:
                    shared = self._shared_gauges[name] = Gauge(
                        f"{self.prefix}_{name}",
                        _help(name),
                        [k for k, _ in labels],
                        registry=None,
                        multiprocess_mode="livemax",
                    )
                (shared.labels(**dict(labels)) if labels else shared).set(value)

    def render(self) -> str:
        if self._multiprocess is None:
            return generate_latest(self.registry).decode()
        self.share_gauges()
        combined = CollectorRegistry(auto_describe=False)
        prometheus_multiprocess.MultiProcessCollector(  # type: ignore[no-untyped-call]
            combined, path=self._multiprocess
        )
        ProcessCollector(registry=combined)
        return generate_latest(combined).decode()


def forget_process(pid: int | None = None) -> None:
    """Drop a finished process's live gauges from the shared folder (counters stay summed)."""
    if multiprocess_dir() is not None:
        prometheus_multiprocess.mark_process_dead(pid or os.getpid())  # type: ignore[no-untyped-call]


def labels_of(**labels: object) -> Labels:
    return tuple(sorted((key, str(value)) for key, value in labels.items()))
