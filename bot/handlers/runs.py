"""/status, /runs, /cancel, /archive, and the buttons under run messages (archive, re-run, cancel)."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, FSInputFile, Message

from bot import texts
from bot.chat import answer_long, send_long
from bot.common import chat_of, owner_of, parse_id
from bot.keyboards import RunAction
from bot.notifier import Notifier
from bot.sender import MAX_FILE_BYTES
from orchestrator.engine import Orchestrator
from orchestrator.errors import ConflictError
from orchestrator.settings import Settings
from orchestrator.store import Store

LATEST_RUNS = 5
RECENT_RUNS = 15


def router() -> Router:
    """Looking at runs and acting on them."""
    router = Router(name="runs")
    router.message.register(status, Command("status"))
    router.message.register(recent_runs, Command("runs"))
    router.message.register(cancel, Command("cancel"))
    router.message.register(archive, Command("archive"))
    router.callback_query.register(run_button, RunAction.filter())
    return router


async def status(
    message: Message, command: CommandObject, orch: Orchestrator, store: Store, settings: Settings
) -> None:
    """/status <run_id>: a run's tasks; a bare /status: the latest runs."""
    if not (command.args or "").strip():
        runs = await store.list_runs(limit=LATEST_RUNS)
        await answer_long(message, texts.run_list(runs, settings.tz, "Latest runs"))
        return
    run_id = parse_id(command.args, texts.usage_run_id("status"), "run")
    report = await orch.report(run_id)
    tasks = list(report.tasks.values())
    link = texts.run_link(settings.public_url, run_id)
    await answer_long(message, texts.status(report.run, tasks, settings.tz, link))


async def recent_runs(message: Message, store: Store, settings: Settings) -> None:
    """/runs: the most recent runs."""
    runs = await store.list_runs(limit=RECENT_RUNS)
    await answer_long(message, texts.run_list(runs, settings.tz, "Recent runs"))


async def cancel(message: Message, command: CommandObject, orch: Orchestrator) -> None:
    """/cancel <run_id>."""
    run_id = parse_id(command.args, texts.usage_run_id("cancel"), "run")
    await orch.cancel(run_id, by=f"bot, {owner_of(message.from_user)}")
    await message.answer(texts.cancelling(run_id))


async def archive(message: Message, command: CommandObject, bot: Bot, orch: Orchestrator, settings: Settings) -> None:
    """/archive <run_id>: the run's ZIP as a document."""
    run_id = parse_id(command.args, texts.usage_run_id("archive"), "run")
    await send_archive(bot, message.chat.id, run_id, orch, settings)


async def send_archive(bot: Bot, chat_id: int, run_id: int, orch: Orchestrator, settings: Settings) -> None:
    """Send a run's archive, or say why there is none."""
    report = await orch.report(run_id)
    path = report.archive
    if path is None or not path.is_file():
        await bot.send_message(chat_id, texts.no_archive(report.run))
        return
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        link = f"{settings.public_url}/api/runs/{run_id}/archive"
        await send_long(bot, chat_id, texts.archive_too_big(run_id, size, link))
        return
    await bot.send_document(chat_id, FSInputFile(path, filename=path.name), caption=texts.archive_caption(report.run))


async def run_button(
    callback: CallbackQuery,
    callback_data: RunAction,
    bot: Bot,
    orch: Orchestrator,
    notifier: Notifier,
    settings: Settings,
) -> None:
    """The archive, re-run and cancel buttons."""
    run_id, chat_id = callback_data.run_id, chat_of(callback)
    if callback_data.action == "zip":
        await callback.answer("Sending the archive…")
        await send_archive(bot, chat_id, run_id, orch, settings)
    elif callback_data.action == "rerun":
        await orch.rerun(run_id)
        progress = notifier.watch(run_id, chat_id)  # before any await: the run may end very soon
        await callback.answer(texts.rerunning(run_id))
        await notifier.post(progress)
    elif callback_data.action == "cancel":
        await orch.cancel(run_id, by=f"bot, {owner_of(callback.from_user)}")
        await callback.answer(f"Cancelling run #{run_id}…")
    else:
        raise ConflictError(f"unknown action {callback_data.action!r}")
