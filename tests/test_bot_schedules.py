"""Schedules from the chat: /schedule (cron, every, at), /schedules, /pause, /resume, /unschedule, and their runs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from orchestrator.engine import Orchestrator
from orchestrator.library import DagLibrary
from orchestrator.settings import Settings
from tests.fake_telegram import ALICE, BOB, BotHarness

T0 = datetime(2026, 6, 1, 0, 0, tzinfo=UTC).timestamp()  # 02:00 in Berlin (summer time)
HELLO = {"dag_name": "hello", "tasks": [{"id": "a", "operation": "noop"}]}


@pytest.fixture
async def tg(settings: Settings, orch: Orchestrator, library: DagLibrary) -> AsyncIterator[BotHarness]:
    """A running bot whose scheduler's clock stands at T0, in Europe/Berlin."""
    await library.add_json(json.dumps(HELLO), source="test")
    async with BotHarness(settings, orch, library, clock=lambda: T0, timezone="Europe/Berlin") as harness:
        yield harness


async def test_a_cron_schedule_answers_with_the_next_three_times(tg: BotHarness, orch: Orchestrator) -> None:
    reply = await tg.say("/schedule hello */5 * * * *")
    assert "Schedule <b>#1</b>: <code>hello</code> <code>*/5 * * * *</code> (Europe/Berlin)" in reply.text
    times = [line.removeprefix("• ") for line in reply.text.splitlines() if line.startswith("• ")]
    assert times == ["2026-06-01 02:05:00", "2026-06-01 02:10:00", "2026-06-01 02:15:00"]
    [stored] = await orch.store.list_schedules()
    assert (stored.dag_id, stored.kind, stored.timezone, stored.owner_id, stored.chat_id) == (
        "hello", "cron", "Europe/Berlin", ALICE["id"], ALICE["id"],
    )  # fmt: skip


async def test_seconds_intervals_and_one_off_times(tg: BotHarness, orch: Orchestrator) -> None:
    assert "• 2026-06-01 02:00:30" in (await tg.say("/schedule hello * * * * * */30")).text
    assert "• 2026-06-01 02:15:00" in (await tg.say("/schedule hello every 15m")).text
    once = await tg.say("/schedule hello at 2026-12-01 09:00")
    assert "<code>at 2026-12-01 09:00</code>" in once.text
    assert "• 2026-12-01 09:00:00" in once.text
    assert [s.kind for s in await orch.store.list_schedules()] == ["cron", "interval", "once"]


async def test_a_duplicate_schedule_is_refused_and_a_daily_one_tells_every_run(
    tg: BotHarness, orch: Orchestrator
) -> None:
    made = await tg.say("/schedule hello 0 9 * * *")
    assert "I'll tell you how each run ends (/notify 1 every|failures|none)." in made.text
    again = await tg.say("/schedule hello 0  9 * * *")
    assert "schedule #1 runs 'hello' 0 9 * * * already" in again.text
    await tg.say("/pause 1")
    assert "already (paused: /resume 1)" in (await tg.say("/schedule hello 0 9 * * *")).text
    assert "Schedule <b>#2</b>" in (await tg.say("/schedule hello 0 10 * * *")).text
    assert [s.schedule_id for s in await orch.store.list_schedules()] == [1, 2]


async def test_bad_schedules_are_explained(tg: BotHarness, orch: Orchestrator) -> None:
    assert "the minute field '61' is not valid; its range is 0-59" in (await tg.say("/schedule hello 61 * * * *")).text
    assert "DAG 'nope' does not exist" in (await tg.say("/schedule nope * * * * *")).text
    assert "Usage: <code>/schedule" in (await tg.say("/schedule hello")).text
    assert "is in the past" in (await tg.say("/schedule hello at 2026-01-01 00:00")).text
    assert await orch.store.list_schedules() == []


async def test_listing_pausing_resuming_and_deleting(tg: BotHarness, orch: Orchestrator) -> None:
    await tg.say("/schedule hello 0 9 * * *")
    listing = await tg.say("/schedules")
    assert "<b>#1</b> <code>hello</code> <code>0 9 * * *</code> — next 2026-06-01 09:00:00" in listing.text
    assert "Schedule #1 paused" in (await tg.say("/pause 1")).text
    assert (await orch.store.get_schedule(1)).paused
    assert "⏸ paused" in (await tg.say("/schedules")).text
    assert "Next run: 2026-06-01 09:00:00" in (await tg.say("/resume 1")).text
    assert "Schedule #1 deleted" in (await tg.say("/unschedule 1")).text
    assert "schedule 1 does not exist" in (await tg.say("/unschedule 1")).text
    assert "Give a schedule id" in (await tg.say("/pause x")).text
    assert "No schedules" in (await tg.say("/schedules")).text


async def test_a_scheduled_run_tells_whoever_made_the_schedule(tg: BotHarness, orch: Orchestrator) -> None:
    made = await tg.say("/schedule hello every 1m", BOB)
    assert "I'll tell you only of runs that fail (/notify 1 every|failures|none)" in made.text, "under 1h: failures"
    [quiet] = await tg.scheduler.tick(T0 + 60)
    await orch.wait(quiet)
    assert "tells failures" in (await tg.say("/schedules", BOB)).text
    assert "only the owner of schedule 1" in (await tg.say("/notify 1 every")).text
    assert "notices can be every, failures, none" in (await tg.say("/notify 1 always", BOB)).text
    assert "I'll tell you how each run ends" in (await tg.say("/notify 1 every", BOB)).text
    [run_id] = await tg.scheduler.tick(T0 + 120)
    final = await tg.tg.expect(BOB["id"], contains=f"Run <b>#{run_id}</b>")
    assert "succeeded" in final.text
    assert f"http://taskflow.test/runs/{run_id}" in final.text
    assert "⏰ Started by schedule <b>#1</b> <code>every 1m</code>." in final.text, "the notice names its schedule"
    assert not [s for s in tg.tg.outbox if f"Run <b>#{quiet}</b>" in s.text], "the quiet run was not told"
    assert [s.text for s in tg.tg.sent_to(ALICE["id"])] == ["❌ only the owner of schedule 1 can choose its notices"], (
        "nobody else is told"
    )

    assert "I won't tell you of its runs" in (await tg.say("/notify 1 none", BOB)).text
    [silent] = await tg.scheduler.tick(T0 + 180)
    await orch.wait(silent)

    await orch.store.delete_dag("hello")
    assert await tg.scheduler.tick(T0 + 240) == []
    warning = await tg.tg.expect(BOB["id"], contains="could not start a run")
    assert "DAG 'hello' does not exist" in warning.text
    assert not [s for s in tg.tg.outbox if f"Run <b>#{silent}</b>" in s.text], "notify none: nothing told"
