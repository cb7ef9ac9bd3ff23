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
from web.render.base import duration_text, esc, state_label

# Spans drawn as bars; ``pending`` (waiting for upstream tasks) is the empty part of the row.
BAR_STATES = frozenset({TaskState.QUEUED, TaskState.RUNNING, TaskState.UP_FOR_RETRY})
TRACK_UNITS = 1000.0  # the track's viewBox width
MIN_BAR_UNITS = 3.0  # so a 1 ms attempt is still visible
MAX_ROWS = 200
TICKS = 5


@dataclass(frozen=True, slots=True)
class Segment:
    """A task in one state from ``start`` to ``end`` (equal for the final mark)."""

    state: str
    start: float
    end: float
    attempt: int | None = None
    error: str | None = None


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
                out.append(Segment(current.state, current.at, following.at, current.attempt, current.error))
        elif current.state in TASK_TERMINAL:
            out.append(Segment(current.state, current.at, current.at, current.attempt, current.error))
        elif current.state in BAR_STATES:
            out.append(Segment(current.state, current.at, max(end, current.at), current.attempt, current.error))
    return out


def timeline_html(timeline: Timeline) -> str:
    """The timeline as HTML rows with an axis of seconds since the run was created."""
    names = list(timeline.rows)
    if not any(timeline.rows.values()):
        return '<p class="muted">No task has started yet.</p>'
    ticks = "".join(f"<span>{duration_text(timeline.span * i / (TICKS - 1))}</span>" for i in range(TICKS))
    rows = "".join(_row(name, timeline.rows[name], timeline) for name in names[:MAX_ROWS])
    more = (
        f'<p class="muted">{len(names) - MAX_ROWS} more tasks are left out of the timeline.</p>'
        if len(names) > MAX_ROWS
        else ""
    )
    return (
        f'<div class="timeline"><div class="tl-axis"><span class="tl-label"></span>'
        f'<div class="tl-ticks">{ticks}</div></div>{rows}</div>{more}'
    )


def _row(task_id: str, segments: list[Segment], timeline: Timeline) -> str:
    bars = "".join(_bar(s, timeline) for s in segments)
    return (
        f'<div class="tl-row"><a class="tl-label" href="#task-{esc(task_id)}" title="{esc(task_id)}">'
        f"{esc(task_id)}</a>"
        f'<svg class="tl-track" viewBox="0 0 {TRACK_UNITS:g} 12" preserveAspectRatio="none" '
        f'aria-label="timeline of {esc(task_id)}">{bars}</svg></div>'
    )


def _bar(segment: Segment, timeline: Timeline) -> str:
    x = (segment.start - timeline.start) / timeline.span * TRACK_UNITS
    width = max((segment.end - segment.start) / timeline.span * TRACK_UNITS, MIN_BAR_UNITS)
    x = min(max(x, 0.0), TRACK_UNITS - width)
    final = segment.start == segment.end
    label = state_label(segment.state)
    if not final:
        label += f" {duration_text(segment.end - segment.start)}"
    label += _attempt_text(segment)
    if segment.error:
        label += f": {segment.error[:300]}"
    css = "seg end" if final else "seg"
    return (
        f'<rect class="{css}" data-state="{esc(segment.state)}" x="{x:.1f}" y="{0 if final else 2}" '
        f'width="{width:.1f}" height="{12 if final else 8}"><title>{esc(label)}</title></rect>'
    )


def _attempt_text(segment: Segment) -> str:
    # The journal counts attempts made so far: a queued task waits for the next one, a retry follows one.
    made = segment.attempt or 0
    if segment.state == TaskState.QUEUED:
        return f" (attempt {made + 1})"
    if segment.state == TaskState.UP_FOR_RETRY:
        return f" (after attempt {made})" if made else ""
    return f" (attempt {made})" if made else ""
