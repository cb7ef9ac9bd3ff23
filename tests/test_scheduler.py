"""The scheduler: specs checked when made, runs started when due, once per missed stretch, never overlapping."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from orchestrator.engine import Orchestrator
from orchestrator.errors import NotFoundError
from orchestrator.library import DagLibrary
from orchestrator.records import ScheduleRecord
from orchestrator.scheduler import ScheduleError, Scheduler, format_duration, parse_duration
from orchestrator.settings import Settings
from orchestrator.states import RunState
from tests.engine_harness import running

T0 = datetime(2026, 6, 1, 0, 0, tzinfo=UTC).timestamp()  # a Monday
HELLO = {"dag_name": "hello", "tasks": [{"id": "a", "operation": "noop"}]}
SLOW = {"dag_name": "slow", "tasks": [{"id": "nap", "operation": "sleep", "independent_params": {"seconds": 60}}]}


class Clock:
    """A clock the test moves."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    """Starts at T0."""
    return Clock()


@pytest.fixture
async def scheduler(settings: Settings, orch: Orchestrator, library: DagLibrary, clock: Clock) -> Scheduler:
    """A scheduler on the controlled clock, with the DAGs ``hello`` and ``slow``."""
    for config in (HELLO, SLOW):
        await library.add_json(json.dumps(config), source="test")
    return Scheduler(settings, orch.store, orch, library, clock=clock)


def _at(text: str, zone: str = "UTC") -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("* * * *", "has 4"),
        ("* * * * * * *", "has 7"),
        ("61 * * * *", "not a valid cron expression: the minute field '61' is not valid; its range is 0-59"),
        ("0 9 * 13 *", "the month field '13' is not valid; its range is 1-12"),
        ("0 9 * * * 60", "the second field '60' is not valid; its range is 0-59"),
        ("0 0 31 2 *", "never fires"),
        ("every 0m", "between 1s and"),
        ("every 5 fortnights", "unknown unit"),
        ("every soon", "cannot read the interval"),
        ("at 2020-01-01 09:00", "is in the past"),
        ("at next tuesday", "cannot read the time"),
    ],
)
async def test_a_bad_spec_is_refused_when_the_schedule_is_made(
    scheduler: Scheduler, orch: Orchestrator, spec: str, message: str
) -> None:
    with pytest.raises(ScheduleError, match=message):
        await scheduler.add("hello", spec, owner_id=1, chat_id=1)
    assert await orch.store.list_schedules() == []


@pytest.mark.parametrize(
    ("spec", "notify"),
    [("every 1m", "failures"), ("*/30 * * * *", "failures"), ("every 1h", "every"), ("0 * * * *", "every"),
     ("0 9 * * *", "every"), ("at 2026-06-02 09:00", "every")],
)  # fmt: skip
async def test_a_schedule_firing_more_often_than_hourly_tells_of_failures_only(
    scheduler: Scheduler, spec: str, notify: str
) -> None:
    record = await scheduler.add("hello", spec, owner_id=1, chat_id=1)
    assert record.notify == notify
    assert (await scheduler.set_notify(record.schedule_id, " None ")).notify == "none"
    with pytest.raises(ScheduleError, match="notices can be every, failures, none"):
        await scheduler.set_notify(record.schedule_id, "sometimes")


async def test_an_identical_schedule_is_refused(scheduler: Scheduler, orch: Orchestrator) -> None:
    await scheduler.add("hello", "every 60s")
    with pytest.raises(ScheduleError, match=r"schedule #1 runs 'hello' every 1m already"):
        await scheduler.add("hello", "every 1m")
    await scheduler.add("slow", "every 1m")
    assert len(await orch.store.list_schedules()) == 2


async def test_an_unknown_dag_cannot_be_scheduled(scheduler: Scheduler) -> None:
    with pytest.raises(NotFoundError):
        await scheduler.add("nope", "* * * * *")


def test_durations_read_and_write_back() -> None:
    assert parse_duration("1h 30m") == 5400
    assert parse_duration("90 seconds") == 90
    assert format_duration(5400) == "1h30m"
    assert format_duration(parse_duration("2 days")) == "2d"


async def test_cron_times_are_read_in_the_configured_timezone(
    settings: Settings, orch: Orchestrator, library: DagLibrary, clock: Clock
) -> None:
    tokyo = Scheduler(settings.model_copy(update={"timezone": "Asia/Tokyo"}), orch.store, orch, library, clock=clock)
    times = tokyo.next_times("0 9 * * *")
    assert times == [_at(f"2026-06-0{d} 09:00", "Asia/Tokyo") for d in (2, 3, 4)]
    assert times[0].astimezone(UTC) == datetime(2026, 6, 2, 0, 0, tzinfo=UTC)
    utc = Scheduler(settings, orch.store, orch, library, clock=clock)
    assert utc.next_times("0 9 * * *")[0] == _at("2026-06-01 09:00")


def _in_berlin(settings: Settings, orch: Orchestrator, library: DagLibrary, clock: Clock) -> Scheduler:
    return Scheduler(settings.model_copy(update={"timezone": "Europe/Berlin"}), orch.store, orch, library, clock=clock)


def _berlin(times: list[datetime]) -> list[str]:
    return [t.isoformat() for t in times]


async def test_daylight_saving_time_changes_fire_each_time_once(
    settings: Settings, orch: Orchestrator, library: DagLibrary, clock: Clock
) -> None:
    berlin = _in_berlin(settings, orch, library, clock)
    # Autumn: 02:00-03:00 comes twice on 2026-10-25. A fixed time of day fires the first time only.
    clock.now = _at("2026-10-24 12:00", "Europe/Berlin").timestamp()
    assert _berlin(berlin.next_times("30 2 * * *")) == [
        "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00", "2026-10-27T02:30:00+01:00",
    ]  # fmt: skip
    assert _berlin(berlin.next_times("30 1-3 * * *", 4)) == [
        "2026-10-25T01:30:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-25T03:30:00+01:00",
        "2026-10-26T01:30:00+01:00",
    ]  # fmt: skip
    # ... while hourly schedules and intervals fire in every real hour, the repeated one too.
    clock.now = _at("2026-10-25 00:30", "Europe/Berlin").timestamp()
    hourly = [t.timestamp() for t in berlin.next_times("0 * * * *", 5)]
    assert [b - a for a, b in itertools.pairwise(hourly)] == [3600] * 4
    assert _berlin(berlin.next_times("*/30 * * * *", 6))[2:] == [
        "2026-10-25T02:00:00+02:00", "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:00:00+01:00", "2026-10-25T02:30:00+01:00",
    ]  # fmt: skip
    every = [t.timestamp() for t in berlin.next_times("every 1h", 4)]
    assert [b - a for a, b in itertools.pairwise(every)] == [3600] * 3
    # Spring: 02:00-03:00 is skipped on 2026-03-29. A time in it fires once, right after the jump.
    clock.now = _at("2026-03-28 12:00", "Europe/Berlin").timestamp()
    assert _berlin(berlin.next_times("30 2 * * *")) == [
        "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00", "2026-03-31T02:30:00+02:00",
    ]  # fmt: skip
    clock.now = _at("2026-03-29 00:30", "Europe/Berlin").timestamp()
    hourly = [t.timestamp() for t in berlin.next_times("0 * * * *", 4)]
    assert [b - a for a, b in itertools.pairwise(hourly)] == [3600] * 3


async def test_a_repeated_hour_starts_one_run_of_a_fixed_time(
    settings: Settings, orch: Orchestrator, library: DagLibrary, clock: Clock
) -> None:
    await library.add_json(json.dumps(HELLO), source="test")
    berlin = _in_berlin(settings, orch, library, clock)
    clock.now = _at("2026-10-25 00:00", "Europe/Berlin").timestamp()
    await berlin.add("hello", "30 2 * * *")
    started = []
    for minutes in range(0, 5 * 60, 15):  # 00:00 to 04:00 local, five real hours
        started += await berlin.tick(clock.now + minutes * 60)
    assert len(started) == 1
    await orch.wait(started[0])


async def test_a_sixth_field_is_seconds_and_intervals_and_once_work(scheduler: Scheduler) -> None:
    assert [t.timestamp() - T0 for t in scheduler.next_times("* * * * * */20")] == [20, 40, 60]
    assert [t.timestamp() - T0 for t in scheduler.next_times("every 15m")] == [900, 1800, 2700]
    assert scheduler.next_times("at 2026-12-01 09:00") == [_at("2026-12-01 09:00")]
    assert scheduler.next_times("@daily")[0] == _at("2026-06-02 00:00")


async def test_a_due_schedule_starts_one_run(scheduler: Scheduler, orch: Orchestrator, clock: Clock) -> None:
    await orch.store.upsert_user(7, "Alice", 7, "Alice")
    record = await scheduler.add("hello", "every 1m", owner_id=7, chat_id=70)
    assert (record.kind, record.expr, record.timezone, record.next_fire_at) == ("interval", "1m", "UTC", T0 + 60)

    assert await scheduler.tick(T0 + 30) == []
    [run_id] = await scheduler.tick(T0 + 60)
    report = await orch.wait(run_id)
    assert report.state == RunState.SUCCESS
    run = report.run
    assert (run.trigger, run.owner, run.notify_chat) == (f"schedule:{record.schedule_id}", "@alice", 70)
    stored = await scheduler.get(record.schedule_id)
    assert (stored.last_run_id, stored.last_fire_at, stored.next_fire_at) == (run_id, T0 + 60, T0 + 120)


async def test_slots_missed_while_down_start_one_run(scheduler: Scheduler, orch: Orchestrator) -> None:
    record = await scheduler.add("hello", "*/5 * * * *")
    started = await scheduler.tick(T0 + 10 * 3600 + 7)  # 120 slots went by
    assert len(started) == 1
    stored = await scheduler.get(record.schedule_id)
    assert stored.next_fire_at == T0 + 10 * 3600 + 300, "on to the next slot after now, none of the missed ones"
    assert await scheduler.tick(T0 + 10 * 3600 + 8) == []
    await orch.wait(started[0])


async def test_a_slot_is_skipped_while_the_previous_run_goes_on(
    scheduler: Scheduler, orch: Orchestrator, caplog: pytest.LogCaptureFixture
) -> None:
    await scheduler.add("slow", "every 10s")
    [first] = await scheduler.tick(T0 + 10)
    with caplog.at_level(logging.WARNING, logger="taskflow.scheduler"):
        assert await scheduler.tick(T0 + 20) == []
    assert f"run {first} is still going; this slot is skipped" in caplog.text
    assert len(await orch.store.list_runs()) == 1
    await orch.cancel(first)
    await orch.wait(first)
    [second] = await scheduler.tick(T0 + 30)
    assert second != first
    await orch.cancel(second)
    await orch.wait(second)


async def test_a_one_off_schedule_fires_once(scheduler: Scheduler, orch: Orchestrator) -> None:
    record = await scheduler.add("hello", "at 2026-06-01 08:00")
    assert await scheduler.tick(T0 + 3600) == []
    [run_id] = await scheduler.tick(T0 + 8 * 3600 + 1)
    await orch.wait(run_id)
    assert (await scheduler.get(record.schedule_id)).next_fire_at is None
    assert await scheduler.tick(T0 + 30 * 86400) == []
    assert scheduler.upcoming(await scheduler.get(record.schedule_id)) == []


async def test_a_paused_schedule_waits_and_resumes_from_now(scheduler: Scheduler, clock: Clock) -> None:
    record = await scheduler.add("hello", "every 1h")
    paused = await scheduler.pause(record.schedule_id)
    assert paused.paused
    assert scheduler.upcoming(paused) == []
    assert await scheduler.tick(T0 + 5 * 3600) == []
    clock.now = T0 + 5 * 3600 + 10
    resumed = await scheduler.resume(record.schedule_id)
    assert not resumed.paused
    assert resumed.next_fire_at == clock.now + 3600, "the hours missed while paused are not made up"
    await scheduler.remove(record.schedule_id)
    with pytest.raises(NotFoundError):
        await scheduler.get(record.schedule_id)


async def test_a_schedule_whose_dag_is_gone_says_so_and_moves_on(scheduler: Scheduler, orch: Orchestrator) -> None:
    heard: list[tuple[int, str]] = []

    async def hook(record: ScheduleRecord, message: str) -> None:
        heard.append((record.schedule_id, message))

    scheduler.on_error = hook
    record = await scheduler.add("hello", "every 1m", chat_id=5)
    await orch.store.delete_dag("hello")
    assert await scheduler.tick(T0 + 60) == []
    assert heard == [(record.schedule_id, "DAG 'hello' does not exist")]
    assert (await scheduler.get(record.schedule_id)).next_fire_at == T0 + 120
    assert await orch.store.list_runs() == []


async def test_schedules_survive_a_restart(settings: Settings) -> None:
    clock = Clock()
    async with running(settings) as first:
        library = DagLibrary(settings, first.store)
        await library.add_json(json.dumps(HELLO), source="test")
        record = await Scheduler(settings, first.store, first, library, clock=clock).add("hello", "every 1m")
    clock.now = T0 + 3600  # the service was down for an hour
    async with running(settings) as second:
        scheduler = Scheduler(settings, second.store, second, DagLibrary(settings, second.store), clock=clock)
        assert [s.schedule_id for s in await scheduler.schedules()] == [record.schedule_id]
        started = await scheduler.tick()
        assert len(started) == 1, "one run for the missed hour, not sixty"
        await second.wait(started[0])


async def test_run_forever_fires_on_time_and_wakes_for_new_schedules(
    settings: Settings, orch: Orchestrator, library: DagLibrary
) -> None:
    await library.add_json(json.dumps(HELLO), source="test")
    scheduler = Scheduler(settings, orch.store, orch, library, max_sleep=30)
    loop_task = asyncio.create_task(scheduler.run_forever(), name="scheduler")
    try:
        async with orch.events.subscribe() as events:
            await asyncio.sleep(0)  # the loop is now asleep for up to 30 s
            await scheduler.add("hello", "every 1s")
            async with asyncio.timeout(5):
                while (event := await events.get()).state != RunState.SUCCESS.value or event.task_id:
                    pass
        [run] = await orch.store.list_runs()
        assert run.trigger.startswith("schedule:")
    finally:
        loop_task.cancel()
        await asyncio.gather(loop_task, return_exceptions=True)
