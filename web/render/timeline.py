"""The timeline of a run's attempts, from the store's journal of every transition.

One row per task: when it waited in the queue, ran, and waited to be retried, then a mark for how
it ended. Bars are SVG rects placed in per cent of the run's span, so rows stretch to any width
while their labels stay readable HTML.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from orchestrator.records import EventRecord
from orchestrator.states import RUN_TERMINAL, TASK_TERMINAL, TaskState
from web.render.base import duration_text, state_label

# Spans drawn as bars; ``pending`` (waiting for upstream tasks) is the empty part of the row.
BAR_STATES = frozenset({TaskState.QUEUED, TaskState.RUNNING, TaskState.UP_FOR_RETRY})
TRACK_UNITS = 1000.0  # the track's viewBox width
MIN_BAR_UNITS = 3.0  # so a 1 ms attempt is still visible
MAX_ROWS = 200
TICKS = 5
_OUTCOMES = TASK_TERMINAL | {TaskState.UP_FOR_RETRY}


@dataclass(frozen=True, slots=True)
class Segment:
    """A task in one state from ``start`` to ``end`` (equal for the final mark)."""

    state: str
    start: float
    end: float
    attempt: int | None = None
    error: str | None = None
    outcome: str | None = None  # how a finished attempt ended: its bar takes that colour, not "running"


@dataclass(frozen=True, slots=True)
class Timeline:
    """Segments by task, over the run's span."""

    rows: dict[str, list[Segment]]
    start: float
    end: float

    @property
    def span(self) -> float:
        """Seconds the timeline covers (never zero)."""
        return max(self.end - self.start, 1e-3)


def build_timeline(events: Iterable[EventRecord], task_ids: Iterable[str], now: float) -> Timeline:
    """Turn the journal into segments; a task still in a state extends to ``now``."""
    events = list(events)
    by_task: dict[str, list[EventRecord]] = {t: [] for t in task_ids}
    run_end: float | None = None
    for event in events:
        if event.task_id is None:
            run_end = event.at if event.state in RUN_TERMINAL else None
        elif event.task_id in by_task:
            by_task[event.task_id].append(event)
    start = events[0].at if events else now
    end = max(run_end or now, start)
    return Timeline({t: _segments(evs, end) for t, evs in by_task.items()}, start, end)


def _segments(events: list[EventRecord], end: float) -> list[Segment]:
    out = []
    for i, current in enumerate(events):
        following = events[i + 1] if i + 1 < len(events) else None
        if following is not None:
            if current.state in BAR_STATES:
                outcome = following.state if current.state == TaskState.RUNNING else None
                out.append(Segment(current.state, current.at, following.at, current.attempt, current.error, outcome))
        elif current.state in TASK_TERMINAL:
            out.append(Segment(current.state, current.at, current.at, current.attempt, current.error))
        elif current.state in BAR_STATES:
            out.append(Segment(current.state, current.at, max(end, current.at), current.attempt, current.error))
    return out


@dataclass(frozen=True, slots=True)
class Bar:
    """A segment placed on a row's track (in ``TRACK_UNITS``), with the text its tooltip shows."""

    state: str
    x: float
    width: float
    final: bool
    label: str


@dataclass(frozen=True, slots=True)
class Drawing:
    """What the timeline template draws: axis labels, then one row of bars per task."""

    ticks: list[str]
    rows: list[tuple[str, list[Bar]]]
    left_out: int
    started: bool


def draw(timeline: Timeline) -> Drawing:
    """Place every segment on its row; the axis counts from the run's first event."""
    names = list(timeline.rows)
    ticks = [tick_text(timeline.span * i / (TICKS - 1), timeline.span) for i in range(TICKS)]
    rows = [(name, [_bar(s, timeline) for s in timeline.rows[name]]) for name in names[:MAX_ROWS]]
    started = any(timeline.rows.values())
    return Drawing(ticks, rows, max(0, len(names) - MAX_ROWS), started)


def tick_text(seconds: float, span: float) -> str:
    """An axis label in one unit for the whole axis: milliseconds for a run under a second."""
    if span < 1.0:
        return f"{round(seconds * 1000, 1 if span < 0.01 else 0):g} ms"
    return duration_text(seconds)


def _bar(segment: Segment, timeline: Timeline) -> Bar:
    width = max((segment.end - segment.start) / timeline.span * TRACK_UNITS, MIN_BAR_UNITS)
    x = (segment.start - timeline.start) / timeline.span * TRACK_UNITS
    x = min(max(x, 0.0), TRACK_UNITS - width)
    final = segment.start == segment.end
    label = state_label(segment.state)
    if not final:
        label += f" {duration_text(segment.end - segment.start)}"
    label += _attempt_text(segment)
    if segment.error:
        label += f": {segment.error[:300]}"
    colour = segment.outcome if segment.outcome in _OUTCOMES else segment.state
    return Bar(colour, round(x, 1), round(width, 1), final, label)


def _attempt_text(segment: Segment) -> str:
    # The journal counts attempts made so far: a queued task waits for the next one, a retry follows one.
    made = segment.attempt or 0
    if segment.state == TaskState.QUEUED:
        return f" (attempt {made + 1})"
    if segment.state == TaskState.UP_FOR_RETRY:
        return f" (after attempt {made})" if made else ""
    return f" (attempt {made})" if made else ""
