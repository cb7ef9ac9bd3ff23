"""The service's one scheduler loop: cron expressions, fixed intervals and one-off times.

A schedule is written as users type it:

- a cron expression, 5 fields (minute hour day month weekday) and an optional 6th for seconds
  (croniter's order: ``*/10 * * * * 30`` fires at second 30 of every tenth minute), or ``@daily``-style;
- ``every 15m`` (``s``, ``m``, ``h``, ``d``, combinable: ``every 1h30m``);
- ``at 2026-12-01 09:00`` (once).

Specs are validated when a schedule is made, never when it fires. Times are read in the schedule's
timezone (``TASKFLOW_TIMEZONE`` when it was made). Each schedule stores its next fire time; a tick
starts the runs whose time has come and moves them on to their next time after *now*, so slots
missed while the service was down cause one run at start-up, not one per missed slot. A schedule
whose previous run is still going skips the slot (and says so in the log).

Daylight saving time is handled as cron does: a fixed time of day that the autumn change repeats
fires once (the first time), a time the spring change skips fires once right after the jump, and
schedules with ``*`` in their minute or hour field, like intervals, fire in every real hour.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from croniter import CroniterError, croniter

from orchestrator.engine import Orchestrator
from orchestrator.errors import TaskFlowError
from orchestrator.library import DagLibrary
from orchestrator.records import ScheduleRecord
from orchestrator.runparams import run_params
from orchestrator.settings import Settings
from orchestrator.states import RunState
from orchestrator.store import Store

log = logging.getLogger("taskflow.scheduler")

CRON = "cron"
INTERVAL = "interval"
ONCE = "once"

# Which runs of a schedule its chat hears about (the schedule's ``notify``).
NOTIFY_EVERY = "every"
NOTIFY_FAILURES = "failures"
NOTIFY_NONE = "none"
NOTIFY_CHOICES = (NOTIFY_EVERY, NOTIFY_FAILURES, NOTIFY_NONE)
QUIET_BELOW_S = 3600  # schedules firing more often than this tell of failures only, unless told otherwise

MIN_INTERVAL_S = 1
MAX_INTERVAL_S = 366 * 24 * 3600
MAX_SLEEP_S = 5.0  # re-read the table this often, in case a schedule was changed elsewhere

_CRON_ALIASES = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_UNIT_WORDS = {
    "s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s",
    "m": "m", "min": "m", "mins": "m", "minute": "m", "minutes": "m",
    "h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h",
    "d": "d", "day": "d", "days": "d",
}  # fmt: skip
# croniter's order: the 6th field is seconds.
_CRON_FIELDS = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day of month", "1-31"),
    ("month", "1-12 or jan-dec"),
    ("day of week", "0-7 or sun-sat"),
    ("second", "0-59"),
)
_DURATION_PART = re.compile(r"(\d+)\s*([a-z]+)")
_DATE_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S")

ErrorHook = Callable[[ScheduleRecord, str], Awaitable[None]]


class ScheduleError(TaskFlowError):
    """A schedule that cannot be made: a bad spec, a time in the past, a cron that never fires."""


@dataclass(frozen=True, slots=True)
class Trigger:
    """When a schedule fires: its ``kind`` and canonical ``expr`` (as stored)."""

    kind: str
    expr: str

    @property
    def spec(self) -> str:
        """The schedule as a user writes it."""
        if self.kind == INTERVAL:
            return f"every {self.expr}"
        if self.kind == ONCE:
            return f"at {self.expr}"
        return self.expr

    def following(self, after: float, tz: ZoneInfo, previous: float | None = None) -> float | None:
        """The first fire time strictly after ``after`` (None when there is none any more).

        ``previous`` is the slot that just came due: intervals stay on the grid it started.
        """
        if self.kind == INTERVAL:
            step = parse_duration(self.expr)
            base = after if previous is None else previous
            return base + (math.floor((after - base) / step) + 1) * step
        if self.kind == ONCE:
            at = _parse_time(self.expr, tz).timestamp()
            return at if at > after else None
        times = croniter(self.expr, datetime.fromtimestamp(after, tz))
        while True:
            at = float(times.get_next(datetime).timestamp())
            # As cron does: a fixed time of day that the autumn change repeats fires only the first time;
            # schedules with * in their minute or hour field fire in every real hour.
            if self.every_hour or not _repeated(at, tz):
                return at

    @property
    def every_hour(self) -> bool:
        """Whether a cron schedule has ``*`` (or ``*/n``) in its minute or hour field (cron's wildcard jobs)."""
        if self.kind != CRON:
            return False
        if self.expr.startswith("@"):
            return self.expr == "@hourly"
        minute, hour = self.expr.split()[:2]
        return minute.startswith("*") or hour.startswith("*")


def parse_spec(spec: str, tz: ZoneInfo, now: float) -> Trigger:
    """Validate a schedule as a user typed it; raise ``ScheduleError`` saying what is wrong."""
    text = " ".join(spec.split())
    head, _, rest = text.partition(" ")
    if head.lower() == "every":
        return Trigger(INTERVAL, format_duration(parse_duration(rest)))
    if head.lower() == "at":
        return _parse_once(rest, tz, now)
    return _parse_cron(text, tz, now)


def parse_duration(text: str) -> int:
    """Seconds in ``15m``, ``1h30m``, ``90 s``, ``2 days``; ``ScheduleError`` if it is not one."""
    compact = text.strip().lower()
    parts = _DURATION_PART.findall(compact)
    if not parts or _DURATION_PART.sub("", compact).strip():
        raise ScheduleError(f"cannot read the interval {text!r}; write it like 'every 15m', 'every 1h30m', 'every 2d'")
    seconds = 0
    for number, unit in parts:
        if unit not in _UNIT_WORDS:
            raise ScheduleError(f"unknown unit {unit!r} in {text!r}; use s, m, h or d")
        seconds += int(number) * _UNITS[_UNIT_WORDS[unit]]
    if not MIN_INTERVAL_S <= seconds <= MAX_INTERVAL_S:
        raise ScheduleError(f"the interval must be between {MIN_INTERVAL_S}s and {MAX_INTERVAL_S // 86400}d")
    return seconds


def format_duration(seconds: int) -> str:
    """``5400`` → ``1h30m``: the canonical way an interval is stored and shown."""
    out = []
    for unit in ("d", "h", "m", "s"):
        count, seconds = divmod(seconds, _UNITS[unit])
        if count:
            out.append(f"{count}{unit}")
    return "".join(out) or "0s"


def _parse_once(text: str, tz: ZoneInfo, now: float) -> Trigger:
    at = _parse_time(text, tz)
    if at.timestamp() <= now:
        current = datetime.fromtimestamp(now, tz).strftime("%Y-%m-%d %H:%M")
        raise ScheduleError(f"{text} is in the past (it is {current} in {tz.key})")
    shown = at.strftime("%Y-%m-%d %H:%M:%S" if at.second else "%Y-%m-%d %H:%M")
    return Trigger(ONCE, shown)


def _parse_time(text: str, tz: ZoneInfo) -> datetime:
    for fmt in _DATE_FORMATS:
        with contextlib.suppress(ValueError):
            return datetime.strptime(text.strip(), fmt).replace(tzinfo=tz)
    raise ScheduleError(f"cannot read the time {text!r}; write it like 'at 2026-12-01 09:00'")


def _parse_cron(text: str, tz: ZoneInfo, now: float) -> Trigger:
    fields = text.split()
    if not (text.lower() in _CRON_ALIASES or len(fields) in (5, 6)):
        raise ScheduleError(
            f"a cron expression has 5 fields (minute hour day month weekday) and an optional 6th for "
            f"seconds; {text!r} has {len(fields)}. Other forms: 'every 15m', 'at 2026-12-01 09:00'"
        )
    expr = text.lower() if text.startswith("@") else text
    if not croniter.is_valid(expr):
        raise ScheduleError(f"{text!r} is not a valid cron expression{_bad_field(fields)}")
    trigger = Trigger(CRON, expr)
    try:
        trigger.following(now, tz)
    except (CroniterError, ValueError, OverflowError):
        raise ScheduleError(f"the cron expression {text!r} never fires") from None
    return trigger


def _bad_field(fields: list[str]) -> str:
    """``: the minute field '61' is out of its range 0-59`` for the first field croniter refuses alone."""
    for index, (value, (name, span)) in enumerate(zip(fields, _CRON_FIELDS, strict=False)):
        alone = ["*"] * len(fields)
        alone[index] = value
        if not croniter.is_valid(" ".join(alone)):
            return f": the {name} field {value!r} is not valid; its range is {span}"
    return ""


class Scheduler:
    """Makes, lists and changes schedules, and starts their runs when they come due.

    ``clock`` returns the time as a Unix timestamp; tests pass their own and call ``tick(now)``.
    ``on_error`` (set by the bot) hears about schedules that came due but could not start a run.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        orch: Orchestrator,
        library: DagLibrary,
        *,
        clock: Callable[[], float] = time.time,
        max_sleep: float = MAX_SLEEP_S,
    ) -> None:
        self.settings = settings
        self.store = store
        self.orch = orch
        self.library = library
        self.clock = clock
        self.on_error: ErrorHook | None = None
        self._max_sleep = max_sleep
        self._next_due: float | None = None
        self._wake = asyncio.Event()

    # -- making and changing schedules ------------------------------------------------------

    def parse(self, spec: str) -> Trigger:
        """Validate a spec in the service's timezone (``ScheduleError`` if it cannot be used)."""
        return parse_spec(spec, self.settings.tz, self.clock())

    def next_times(self, spec: str, n: int = 3) -> list[datetime]:
        """The next ``n`` fire times of a spec from now, in the service's timezone."""
        trigger = self.parse(spec)
        return _upcoming(trigger, self.settings.tz, trigger.following(self.clock(), self.settings.tz), n)

    def upcoming(self, record: ScheduleRecord, n: int = 3) -> list[datetime]:
        """The next ``n`` fire times of a stored schedule (none while it is paused or done)."""
        if record.paused:
            return []
        return _upcoming(trigger_of(record), ZoneInfo(record.timezone), record.next_fire_at, n)

    async def add(
        self,
        dag_id: str,
        spec: str,
        *,
        owner_id: int | None = None,
        chat_id: int | None = None,
        params: dict[str, Any] | None = None,
    ) -> ScheduleRecord:
        """Schedule runs of a known DAG; the spec (and ``params`` for its runs) validated here, never when it fires."""
        config = await self.library.get(dag_id)  # NotFoundError for an unknown DAG
        run_params(config.params, params)  # ConfigError for a param it does not have, or of the wrong type
        trigger = self.parse(spec)
        await self._refuse_duplicate(dag_id, trigger)
        first = trigger.following(self.clock(), self.settings.tz)
        record = await self.store.add_schedule(
            dag_id,
            trigger.kind,
            trigger.expr,
            self.settings.timezone,
            owner_id=owner_id,
            chat_id=chat_id,
            next_fire_at=first,
            notify=default_notify(trigger, self.settings.tz, self.clock()),
            params=params,
        )
        log.info("schedule %d: %r %s (next %s)", record.schedule_id, dag_id, trigger.spec, _shown(first, record))
        self.wake()
        return record

    async def _refuse_duplicate(self, dag_id: str, trigger: Trigger) -> None:
        for other in await self.store.list_schedules():
            if (other.dag_id, other.kind, other.expr, other.timezone) == (
                dag_id,
                trigger.kind,
                trigger.expr,
                self.settings.timezone,
            ):
                paused = f" (paused: /resume {other.schedule_id})" if other.paused else ""
                raise ScheduleError(f"schedule #{other.schedule_id} runs {dag_id!r} {trigger.spec} already{paused}")

    async def set_notify(self, schedule_id: int, choice: str) -> ScheduleRecord:
        """Choose which runs of a schedule its chat hears about: every, failures or none."""
        choice = choice.strip().lower()
        if choice not in NOTIFY_CHOICES:
            raise ScheduleError(f"notices can be {', '.join(NOTIFY_CHOICES)}; not {choice!r}")
        return await self.store.update_schedule(schedule_id, notify=choice)

    async def get(self, schedule_id: int) -> ScheduleRecord:
        """One schedule (``NotFoundError`` if there is none)."""
        return await self.store.get_schedule(schedule_id)

    async def schedules(self, *, owner_id: int | None = None) -> list[ScheduleRecord]:
        """Every schedule (or one owner's), by id."""
        return await self.store.list_schedules(owner_id=owner_id)

    async def pause(self, schedule_id: int) -> ScheduleRecord:
        """Stop a schedule firing until it is resumed."""
        return await self.store.update_schedule(schedule_id, paused=1)

    async def resume(self, schedule_id: int) -> ScheduleRecord:
        """Let a paused schedule fire again, from its next time after now (missed slots are not run)."""
        record = await self.store.get_schedule(schedule_id)
        tz = ZoneInfo(record.timezone)
        following = trigger_of(record).following(self.clock(), tz)
        record = await self.store.update_schedule(schedule_id, paused=0, next_fire_at=following)
        self.wake()
        return record

    async def remove(self, schedule_id: int) -> None:
        """Delete a schedule (its runs stay)."""
        await self.store.delete_schedule(schedule_id)

    # -- firing -----------------------------------------------------------------------------

    def wake(self) -> None:
        """Make ``run_forever`` look at the table now (a schedule was added or resumed)."""
        self._wake.set()

    async def tick(self, now: float | None = None) -> list[int]:
        """Start the runs of every schedule due at ``now``; returns the ids of the runs started."""
        now = self.clock() if now is None else now
        started: list[int] = []
        next_due: float | None = None
        for record in await self.store.list_schedules():
            if record.paused or record.next_fire_at is None:
                continue
            if record.next_fire_at <= now:
                try:
                    run_id, record = await self._fire(record, now)
                except Exception:  # one broken schedule must not stop the others
                    log.exception("schedule %d failed to fire", record.schedule_id)
                    continue
                if run_id is not None:
                    started.append(run_id)
            if record.next_fire_at is not None and not record.paused:
                next_due = record.next_fire_at if next_due is None else min(next_due, record.next_fire_at)
        self._next_due = next_due
        return started

    async def run_forever(self) -> None:
        """Tick until cancelled (start it as one named task of the service)."""
        log.info("scheduler started (timezone %s)", self.settings.timezone)
        while True:
            self._wake.clear()
            try:
                await self.tick()
            except Exception:  # e.g. the database is busy: try again shortly
                log.exception("scheduler tick failed")
                self._next_due = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._sleep_time())

    def _sleep_time(self) -> float:
        if self._next_due is None:
            return self._max_sleep
        return min(max(self._next_due - self.clock(), 0.0), self._max_sleep)

    async def _fire(self, record: ScheduleRecord, now: float) -> tuple[int | None, ScheduleRecord]:
        following = trigger_of(record).following(now, ZoneInfo(record.timezone), record.next_fire_at)
        sid = record.schedule_id
        if record.last_run_id is not None and self.orch.is_active(record.last_run_id):
            log.warning("schedule %d: run %d is still going; this slot is skipped", sid, record.last_run_id)
            return None, await self.store.update_schedule(sid, next_fire_at=following)
        try:
            config = await self.library.get(record.dag_id)
            limit = config.max_active_runs
            if limit is not None and self.orch.active_runs(config.dag_id) >= limit:
                log.warning("schedule %d: %d run(s) of %r are going (max_active_runs); this slot is skipped",
                            sid, limit, config.dag_id)  # fmt: skip
                return None, await self.store.update_schedule(sid, next_fire_at=following)
            run_id = await self.orch.submit(
                config,
                trigger=f"schedule:{sid}",
                owner=await self._owner(record),
                notify_chat=record.chat_id,
                params=record.params,
                logical_date=record.next_fire_at,  # the slot it fires for, however late
            )
        except TaskFlowError as exc:
            log.warning("schedule %d could not start a run of %r: %s", sid, record.dag_id, exc)
            record = await self.store.update_schedule(sid, next_fire_at=following, last_fire_at=now)
            await self._report(record, str(exc))
            return None, record
        log.info("schedule %d started run %d of %r", sid, run_id, record.dag_id, extra={"run_id": run_id})
        record = await self.store.update_schedule(sid, next_fire_at=following, last_fire_at=now, last_run_id=run_id)
        return run_id, record

    async def _owner(self, record: ScheduleRecord) -> str:
        if record.owner_id is None:
            return f"schedule:{record.schedule_id}"
        user = await self.store.get_user(record.owner_id)
        return f"@{user.username}" if user and user.username else f"telegram:{record.owner_id}"

    async def _report(self, record: ScheduleRecord, message: str) -> None:
        if self.on_error is None:
            return
        try:
            await self.on_error(record, message)
        except Exception:  # telling someone must never stop the loop
            log.exception("could not report the failure of schedule %d", record.schedule_id)


def default_notify(trigger: Trigger, tz: ZoneInfo, now: float) -> str:
    """Failures only for a schedule that fires more often than hourly (a chat would drown), else every run."""
    times = _upcoming(trigger, tz, trigger.following(now, tz), 4)
    gaps = [b.timestamp() - a.timestamp() for a, b in itertools.pairwise(times)]
    return NOTIFY_FAILURES if gaps and min(gaps) < QUIET_BELOW_S else NOTIFY_EVERY


def notify_of(record: ScheduleRecord) -> str:
    """The schedule's notify setting (its default for schedules made before there was one)."""
    if record.notify in NOTIFY_CHOICES:
        return record.notify
    return default_notify(trigger_of(record), ZoneInfo(record.timezone), record.created_at)


def tells(notify: str, state: RunState) -> bool:
    """Whether a run that ended in ``state`` is told about under the ``notify`` setting."""
    return notify == NOTIFY_EVERY or (notify == NOTIFY_FAILURES and state != RunState.SUCCESS)


def _repeated(at: float, tz: ZoneInfo) -> bool:
    """Whether ``at`` is the second time its wall-clock time occurs (the hour the autumn change repeats)."""
    moment = datetime.fromtimestamp(at, tz)
    return moment.fold == 1 and moment.replace(fold=0).utcoffset() != moment.utcoffset()


def trigger_of(record: ScheduleRecord) -> Trigger:
    """The trigger of a stored schedule."""
    return Trigger(record.kind, record.expr)


def _upcoming(trigger: Trigger, tz: ZoneInfo, first: float | None, n: int) -> list[datetime]:
    times: list[datetime] = []
    current = first
    while current is not None and len(times) < n:
        times.append(datetime.fromtimestamp(current, tz))
        current = trigger.following(current, tz, current)
    return times


def _shown(at: float | None, record: ScheduleRecord) -> str:
    if at is None:
        return "never"
    return datetime.fromtimestamp(at, ZoneInfo(record.timezone)).isoformat(sep=" ", timespec="seconds")
