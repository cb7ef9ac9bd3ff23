"""A run's progress as parts per outcome, so a failed run never reads as done and green.

Every view (web pages, the CLI bar) groups task states the same way, defined here once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from orchestrator.states import TaskState

# (key, label, task states): in the order the bar is drawn, outcomes first.
GROUPS: tuple[tuple[str, str, frozenset[TaskState]], ...] = (
    ("success", "succeeded", frozenset({TaskState.SUCCESS})),
    ("failed", "failed", frozenset({TaskState.FAILED})),
    ("upstream_failed", "upstream failed", frozenset({TaskState.UPSTREAM_FAILED})),
    ("cancelled", "cancelled", frozenset({TaskState.CANCELLED})),
    ("running", "running", frozenset({TaskState.RUNNING})),
    ("waiting", "waiting", frozenset({TaskState.PENDING, TaskState.QUEUED, TaskState.UP_FOR_RETRY})),
)
_GROUP_OF = {state: key for key, _, states in GROUPS for state in states}


@dataclass(frozen=True, slots=True)
class Part:
    """One group of tasks: its key (a state name the stylesheet colours), label and count."""

    key: str
    label: str
    count: int


@dataclass(frozen=True, slots=True)
class Progress:
    """How many tasks are in each group."""

    parts: tuple[Part, ...]
    total: int

    @property
    def shown(self) -> list[Part]:
        """The groups that have tasks."""
        return [p for p in self.parts if p.count]

    def share(self, part: Part) -> float:
        """The part's width in per cent."""
        return 100.0 * part.count / self.total if self.total else 0.0

    def text(self) -> str:
        """``2 succeeded, 1 failed of 3``."""
        if not self.total:
            return "no tasks"
        return ", ".join(f"{p.count} {p.label}" for p in self.shown) + f" of {self.total}"


def progress(counts: Mapping[str, int]) -> Progress:
    """Progress from task counts by state (as ``RunRecord.counts`` holds them)."""
    by_group = dict.fromkeys((key for key, _, _ in GROUPS), 0)
    for state, n in counts.items():
        by_group[_GROUP_OF.get(state, "waiting")] += n
    parts = tuple(Part(key, label, by_group[key]) for key, label, _ in GROUPS)
    return Progress(parts, sum(by_group.values()))


def count_states(states: Iterable[str]) -> dict[str, int]:
    """Task counts by state."""
    counts: dict[str, int] = {}
    for state in states:
        counts[state] = counts.get(state, 0) + 1
    return counts
