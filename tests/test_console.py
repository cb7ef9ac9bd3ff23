"""The terminal's progress bar: a stretch per outcome, so a failed run never reads as done."""

from __future__ import annotations

from orchestrator.console import BAR_CELLS, PART_STYLE, progress_bar
from orchestrator.progress import progress


def stretches(counts: dict[str, int]) -> list[tuple[str, int]]:
    """(style, cells) of each coloured stretch of the bar."""
    bar = progress_bar(progress(counts))
    return [(str(span.style), span.end - span.start) for span in bar.spans]


def test_a_failed_run_has_no_green() -> None:
    assert stretches({"failed": 1, "upstream_failed": 2}) == [
        (PART_STYLE["failed"], 13),
        (PART_STYLE["upstream_failed"], 27),
    ]
    assert progress_bar(progress({"failed": 1, "upstream_failed": 2})).plain.endswith(
        "1 failed, 2 upstream failed of 3"
    )


def test_a_run_going_leaves_the_rest_of_the_bar_waiting() -> None:
    parts = stretches({"success": 1, "running": 1, "pending": 2})
    assert parts == [(PART_STYLE["success"], 10), (PART_STYLE["running"], 10), (PART_STYLE["waiting"], 20)]
    assert sum(n for _, n in parts) == BAR_CELLS
