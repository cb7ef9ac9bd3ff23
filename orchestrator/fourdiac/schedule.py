"""The suggested schedule: an E_CYCLE started by START, its period DT as a cron expression."""

from __future__ import annotations

import math

from orchestrator.fourdiac.blocks import Kind
from orchestrator.fourdiac.flow import Flow
from orchestrator.fourdiac.literals import iec_literal
from orchestrator.fourdiac.model import Node

# (unit in seconds, how many units make the next unit, the cron template)
_CRON_STEPS = ((1, 60, "* * * * * {}"), (60, 60, "{} * * * *"), (3600, 24, "0 {} * * *"))


def suggested_schedule(flow: Flow) -> str | None:
    """The cron schedule of the network's E_CYCLE blocks (None if none has one, or they disagree)."""
    crons: dict[str, str] = {}
    for node in flow.nodes.values():
        if node.kind is Kind.CYCLE:
            cron = _cycle_schedule(flow, node)
            if cron is not None:
                crons[node.label] = cron
    if len(set(crons.values())) > 1:
        periods = ", ".join(f"{label} ({cron!r})" for label, cron in crons.items())
        flow.net.problem("E_CYCLE", f"E_CYCLE blocks with different periods: {periods}; a DAG has one schedule")
        return None
    return next(iter(crons.values()), None)


def _cycle_schedule(flow: Flow, node: Node) -> str | None:
    tasks, entries = flow.walk_events(node.key, {"START"})
    if not tasks and not entries:
        flow.net.note(f"nothing starts E_CYCLE '{node.label}'; no schedule suggested")
        return None
    if tasks:
        message = (
            f"E_CYCLE is started by {', '.join(sorted(tasks))}; a periodic block inside a run cannot be mapped "
            "(only an E_CYCLE started by START becomes the DAG's schedule)"
        )
        flow.net.problem(node.where, message)
        return None
    seconds = _cycle_period(flow, node)
    if seconds is None:
        return None
    cron = cron_for_period(seconds)
    if cron is None:
        flow.net.note(f"E_CYCLE '{node.label}': a period of {seconds:g} s has no cron equivalent; no schedule")
        return None
    flow.net.note(
        f"E_CYCLE '{node.label}' (every {seconds:g} s) became the suggested schedule {cron!r} "
        "(a 6th field is seconds); the tasks it fires are entry tasks"
    )
    return cron


def _cycle_period(flow: Flow, node: Node) -> float | None:
    source = flow.data_source(node.key, "DT")
    raw = node.params.get("DT") if source is None else source.literal
    if raw is None:
        feeder = source.task or source.origin if source is not None else None
        origin = f" (it comes from {feeder.label})" if feeder is not None else ""
        flow.net.note(f"E_CYCLE '{node.label}' has no literal DT{origin}; no schedule suggested")
        return None
    try:
        value = iec_literal(raw)
    except ValueError:
        value = None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        flow.net.problem(node.where, f"DT {raw!r} is not a positive duration like T#10s")
        return None
    return float(value)


def cron_for_period(seconds: float) -> str | None:
    """A cron expression firing every ``seconds`` (seconds go in the optional 6th field), or None."""
    if not math.isfinite(seconds) or seconds <= 0 or seconds != int(seconds):
        return None
    period = int(seconds)
    if period == 86400:
        return "0 0 * * *"
    if period == 7 * 86400:
        return "0 0 * * 0"
    for unit, span, template in _CRON_STEPS:
        count, rest = divmod(period, unit)
        if rest == 0 and 0 < count < span and span % count == 0:
            return template.format("*" if count == 1 else f"*/{count}")
    return None
