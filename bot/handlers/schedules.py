"""/schedule, /schedules, /unschedule, /pause, /resume, /notify."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from bot import texts
from bot.chat import answer_long
from bot.common import UsageError, parse_id
from orchestrator.errors import ConflictError
from orchestrator.runparams import split_assignments
from orchestrator.scheduler import Scheduler
from orchestrator.settings import Settings


def router() -> Router:
    """Making and managing schedules."""
    router = Router(name="schedules")
    router.message.register(schedule, Command("schedule"))
    router.message.register(list_schedules, Command("schedules"))
    router.message.register(unschedule, Command("unschedule"))
    router.message.register(pause, Command("pause"))
    router.message.register(resume, Command("resume"))
    router.message.register(notify, Command("notify"))
    return router


async def schedule(message: Message, command: CommandObject, scheduler: Scheduler, settings: Settings) -> None:
    """/schedule <dag_id> <cron | every 15m | at 2026-12-01 09:00> [name=value ...]; answers with the next times."""
    dag_id, _, rest = (command.args or "").strip().partition(" ")
    try:
        spec, params = split_assignments(rest)
    except ValueError as exc:
        raise UsageError(f"{texts.esc(str(exc))}\n\n{texts.USAGE_SCHEDULE}") from None
    if not dag_id or not spec:
        raise UsageError(texts.USAGE_SCHEDULE)
    owner = message.from_user.id if message.from_user else None
    record = await scheduler.add(dag_id, spec, owner_id=owner, chat_id=message.chat.id, params=params or None)
    await message.answer(texts.schedule_made(record, scheduler.upcoming(record), settings.tz))


async def list_schedules(message: Message, scheduler: Scheduler, settings: Settings) -> None:
    """Every schedule with its next fire time."""
    records = await scheduler.schedules()
    lines = [texts.schedule_line(r, scheduler.upcoming(r, 1), settings.tz) for r in records]
    await answer_long(message, texts.schedule_list(lines, settings.tz))


async def unschedule(message: Message, command: CommandObject, scheduler: Scheduler) -> None:
    """/unschedule <id>."""
    schedule_id = parse_id(command.args, texts.usage_schedule_id("unschedule"), "schedule")
    await scheduler.remove(schedule_id)
    await message.answer(texts.schedule_removed(schedule_id))


async def pause(message: Message, command: CommandObject, scheduler: Scheduler) -> None:
    """/pause <id>."""
    schedule_id = parse_id(command.args, texts.usage_schedule_id("pause"), "schedule")
    await scheduler.pause(schedule_id)
    await message.answer(texts.schedule_paused(schedule_id))


async def resume(message: Message, command: CommandObject, scheduler: Scheduler, settings: Settings) -> None:
    """/resume <id>."""
    schedule_id = parse_id(command.args, texts.usage_schedule_id("resume"), "schedule")
    record = await scheduler.resume(schedule_id)
    await message.answer(texts.schedule_resumed(record, scheduler.upcoming(record, 1), settings.tz))


async def notify(message: Message, command: CommandObject, scheduler: Scheduler) -> None:
    """/notify <id> every|failures|none: which runs of a schedule its chat hears about (its owner's choice)."""
    number, _, choice = (command.args or "").strip().partition(" ")
    schedule_id = parse_id(number, texts.USAGE_NOTIFY, "schedule")
    record = await scheduler.get(schedule_id)
    if not choice.strip():
        await message.answer(texts.notify_set(record))
        return
    user = message.from_user.id if message.from_user else None
    if record.owner_id is not None and user != record.owner_id:
        raise ConflictError(f"only the owner of schedule {schedule_id} can choose its notices")
    record = await scheduler.set_notify(schedule_id, choice)
    await message.answer(texts.notify_set(record))
