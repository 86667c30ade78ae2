"""Replays in the console: each replay group's range (stored with its commits) and progress."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.console.watch import GroupView, Snapshot
from pipeline.ops.offset_ranges import PartitionRange
from pipeline.ops.replay import stored_ranges


@dataclass(frozen=True)
class ReplayView:
    group: str
    topic: str
    total: int
    done: int
    rate: float | None
    members: int

    @property
    def finished(self) -> bool:
        return self.done >= self.total

    @property
    def eta_s(self) -> float | None:
        if self.finished:
            return 0.0
        if not self.rate:
            return None
        return (self.total - self.done) / self.rate

    def to_json(self) -> dict[str, object]:
        return {
            "group": self.group,
            "topic": self.topic,
            "total": self.total,
            "done": self.done,
            "finished": self.finished,
            "rate": self.rate,
            "eta_s": self.eta_s,
            "members": self.members,
        }


def replay_of(view: GroupView) -> ReplayView | None:
    """Progress from the range the replay stored in its commits' metadata (None: none stored)."""
    commits = view.commits
    for sample in view.lags:
        ranges: dict[int, PartitionRange] | None = None
        done: dict[int, int] = {}
        for tp, committed in commits.items():
            if tp.topic == sample.topic:
                done[tp.partition] = committed.offset
                ranges = ranges or stored_ranges(committed.metadata)
        if ranges is None:
            continue
        total = sum(r.size for r in ranges.values())
        advanced = sum(
            max(0, min(done.get(p, r.start), r.end) - r.start) for p, r in ranges.items()
        )
        return ReplayView(
            view.group,
            sample.topic,
            total,
            advanced,
            sample.consume_rate,
            len(view.description.members),
        )
    return None


def replays_in(snapshot: Snapshot) -> list[ReplayView]:
    """Every replay group of the sample that stored its range."""
    return [
        found
        for view in snapshot.groups.values()
        if view.replay and (found := replay_of(view)) is not None
    ]
