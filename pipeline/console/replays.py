"""Replays in the console: each replay group's range (stored with its commits) and progress."""

from __future__ import annotations

import json
from dataclasses import dataclass

from pipeline.console.watch import GroupView
from pipeline.ops.replay import METADATA_VERSION


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
        ranges: dict[int, tuple[int, int]] | None = None
        done: dict[int, int] = {}
        for tp, committed in commits.items():
            if tp.topic != sample.topic:
                continue
            done[tp.partition] = committed.offset
            try:
                stored = json.loads(committed.metadata or "{}")
            except json.JSONDecodeError:
                continue
            if isinstance(stored, dict) and stored.get("v") == METADATA_VERSION and ranges is None:
                ranges = {int(p): (int(b[0]), int(b[1])) for p, b in stored["ranges"].items()}
        if ranges is None:
            continue
        total = sum(end - start for start, end in ranges.values())
        advanced = sum(
            max(0, min(done.get(p, start), end) - start) for p, (start, end) in ranges.items()
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
