"""The demo's live view: what flows where, read from the brokers and the replicas.

Rates come from end offsets (what the brokers hold), lag from the groups'
commits (as `pipeline lag` reads them), and cache and sink
figures from the replicas' /metrics, so the view shows the system as an
operator's tools would see it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.console import Group, RenderableType
from rich.table import Table

from pipeline.local import ClusterProbe, WorkerProcess


@dataclass
class Snapshot:
    at: float
    orders: int
    enriched: int
    dead_lettered: int
    lag: dict[str, dict[int, int]]
    cache_hits: float
    cache_misses: float
    sink_rows: float
    replicas_ready: int
    replicas: int


@dataclass
class Rates:
    orders_per_s: float = 0.0
    enriched_per_s: float = 0.0
    sink_rows_per_s: float = 0.0


@dataclass
class FlowProbe:
    """What the view shows of each stage, asked of one cluster probe."""

    cluster: ClusterProbe
    stages: dict[str, tuple[str, str]]
    """role (`orders`, `enriched`) → (the group consuming it, its topic)."""
    dlq_topics: list[str]

    async def snapshot(self, workers: list[WorkerProcess]) -> Snapshot:
        ends = {
            role: await self.cluster.end_offsets(topic) for role, (_, topic) in self.stages.items()
        }
        lag = {group: await self.cluster.lag(group, topic) for group, topic in self.stages.values()}
        dead = [sum((await self.cluster.end_offsets(topic)).values()) for topic in self.dlq_topics]
        metrics = [worker.metrics() for worker in workers if worker.running]
        return Snapshot(
            at=time.monotonic(),
            orders=sum(ends["orders"].values()),
            enriched=sum(ends["enriched"].values()),
            dead_lettered=sum(dead),
            lag=lag,
            cache_hits=sum(m.get("pipeline_cache_hits_total", 0.0) for m in metrics),
            cache_misses=sum(m.get("pipeline_cache_misses_total", 0.0) for m in metrics),
            sink_rows=sum(m.get("pipeline_sink_items_total", 0.0) for m in metrics),
            replicas_ready=sum(1 for worker in workers if worker.is_ready()),
            replicas=len(workers),
        )


def rates(previous: Snapshot | None, current: Snapshot) -> Rates:
    if previous is None or current.at <= previous.at:
        return Rates()
    elapsed = current.at - previous.at
    return Rates(
        orders_per_s=(current.orders - previous.orders) / elapsed,
        enriched_per_s=(current.enriched - previous.enriched) / elapsed,
        sink_rows_per_s=(current.sink_rows - previous.sink_rows) / elapsed,
    )


def hit_ratio(snapshot: Snapshot) -> float:
    lookups = snapshot.cache_hits + snapshot.cache_misses
    return snapshot.cache_hits / lookups if lookups else 0.0


def render(snapshot: Snapshot, rate: Rates, phase: str) -> RenderableType:
    flow = Table(title=f"pipeline — {phase}", title_justify="left")
    for column in ("orders in/s", "enriched out/s", "sink rows/s", "dead-lettered", "cache hits"):
        flow.add_column(column, justify="right")
    flow.add_column("replicas ready", justify="right")
    flow.add_row(
        f"{rate.orders_per_s:,.0f}",
        f"{rate.enriched_per_s:,.0f}",
        f"{rate.sink_rows_per_s:,.0f}",
        f"{snapshot.dead_lettered:,}",
        f"{hit_ratio(snapshot):.1%}",
        f"{snapshot.replicas_ready}/{snapshot.replicas}",
    )
    lag = Table(title="lag per partition (records not yet committed)", title_justify="left")
    lag.add_column("group")
    partitions = sorted({p for per_group in snapshot.lag.values() for p in per_group})
    for partition in partitions:
        lag.add_column(str(partition), justify="right")
    lag.add_column("total", justify="right")
    for group, per_partition in snapshot.lag.items():
        lag.add_row(
            group,
            *(f"{per_partition.get(p, 0):,}" for p in partitions),
            f"{sum(per_partition.values()):,}",
        )
    return Group(flow, lag)


def one_line(snapshot: Snapshot, rate: Rates, phase: str) -> str:
    """The view for logs and pipes, where a live table would be noise."""
    lag = ", ".join(f"{group} lag {sum(p.values()):,}" for group, p in snapshot.lag.items())
    return (
        f"[{phase}] in {rate.orders_per_s:,.0f}/s, out {rate.enriched_per_s:,.0f}/s, "
        f"sink {rate.sink_rows_per_s:,.0f} rows/s, DLQ {snapshot.dead_lettered:,}, "
        f"cache hits {hit_ratio(snapshot):.1%}, {lag}"
    )
