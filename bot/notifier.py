"""Telling people about runs.

- A run started from the chat gets one status message, edited in place as its tasks move (at most
  one edit per ``edit_interval`` seconds: Telegram limits edits), then a final message with the
  outcome, the status page link and buttons for the archive and a re-run from the failure.
- Any other run that ends with a ``notify_chat`` (a scheduled run, a run resumed after a restart)
  gets the final message in that chat.
- After a restart that resumed runs, the admins get one digest.

One subscription to the orchestrator's event bus drives all of it. Its loop never waits on Telegram:
sends and edits run as named background tasks, so a slow chat never makes the loop drop events.
Telegram's 429s are waited out by the bot's session (``bot.ratelimit``); any edit that still fails
is logged and skipped, so a run's final message is always sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramRetryAfter
from aiogram.types import InlineKeyboardMarkup, Message

from bot import texts
from bot.chat import send_long
from bot.keyboards import final_buttons, progress_buttons
from orchestrator.background import TaskSet
from orchestrator.engine import Orchestrator, RunReport
from orchestrator.errors import NotFoundError
from orchestrator.events import RunEvent, Subscription
from orchestrator.records import ScheduleRecord
from orchestrator.scheduler import notify_of, tells
from orchestrator.settings import Settings
from orchestrator.states import RUN_TERMINAL, RunState, TaskState
from orchestrator.store import Store

log = logging.getLogger("taskflow.bot")

ATTACH_TIMEOUT_S = 30.0  # how long a final message waits for the status message to exist
_TERMINAL = frozenset(s.value for s in RUN_TERMINAL)


@dataclass(eq=False)
class Progress:
    """The live status message of one run in one chat."""

    run_id: int
    chat_id: int
    dag_id: str = ""
    run_state: RunState = RunState.RUNNING
    states: dict[str, TaskState] = field(default_factory=dict)  # in the DAG's task order
    seconds: dict[str, float | None] = field(default_factory=dict)
    message_id: int | None = None
    attached: asyncio.Event = field(default_factory=asyncio.Event)
    shown: str = ""
    last_edit: float = -math.inf
    editor: asyncio.Task[None] | None = None
    done: bool = False

    def load(self, report: RunReport) -> None:
        """Take the run as stored (the events that follow update it)."""
        self.dag_id = report.run.dag_id
        self.run_state = report.run.state
        self.states = {task_id: task.state for task_id, task in report.tasks.items()}
        self.seconds = {task_id: task.duration_s for task_id, task in report.tasks.items()}

    def apply(self, event: RunEvent) -> None:
        """One task moved."""
        if event.task_id is not None:
            self.states[event.task_id] = TaskState(event.state)

    def render(self) -> str:
        """The message's text now."""
        rows = [(task_id, state, self.seconds.get(task_id)) for task_id, state in self.states.items()]
        return texts.progress(self.run_id, self.dag_id, self.run_state, rows)


class Notifier:
    """Status messages, final messages and the restart digest (see the module's docstring)."""

    def __init__(
        self, bot: Bot, orch: Orchestrator, store: Store, settings: Settings, *, edit_interval: float = 1.5
    ) -> None:
        self.bot = bot
        self.orch = orch
        self.store = store
        self.settings = settings
        self.edit_interval = edit_interval
        self._watched: dict[int, Progress] = {}
        self._tasks = TaskSet()
        self._stack = contextlib.AsyncExitStack()
        self._sub: Subscription | None = None

    async def start(self) -> None:
        """Subscribe to every run's events (nothing published after this returns is missed)."""
        self._sub = await self._stack.enter_async_context(self.orch.events.subscribe(None))
        self._tasks.spawn(self._listen(self._sub), name="telegram-notifier")

    async def stop(self) -> None:
        """Stop the loop and every pending send or edit."""
        await self._tasks.close()
        await self._stack.aclose()

    def task_names(self) -> list[str]:
        """Names of the notifier's background tasks still going."""
        return self._tasks.names()

    # -- status messages --------------------------------------------------------------------

    def watch(self, run_id: int, chat_id: int) -> Progress:
        """Follow a run for a chat. Call it right after starting the run, before awaiting anything."""
        progress = Progress(run_id, chat_id)
        self._watched[run_id] = progress
        return progress

    async def post(self, progress: Progress) -> Message:
        """Send the status message of a watched run; later events edit it."""
        progress.load(await self.orch.report(progress.run_id))
        text = progress.render()
        markup = None if progress.run_state in RUN_TERMINAL else progress_buttons(progress.run_id)
        try:
            message = await self.bot.send_message(progress.chat_id, text, reply_markup=markup)
        finally:
            # Sent or not, the final message need not wait for it any longer.
            progress.attached.set()
        progress.message_id, progress.shown = message.message_id, text
        progress.last_edit = asyncio.get_running_loop().time()
        self._changed(progress)  # events that came while it was being sent
        # Kept, so that a run resumed after a restart goes on editing this message.
        await self.store.set_status_message(progress.run_id, progress.chat_id, message.message_id)
        return message

    async def reattach(self, run_ids: list[int]) -> None:
        """Go on editing the status messages of runs resumed after a restart, to their end."""
        for run_id in run_ids:
            posted = await self.store.get_status_message(run_id)
            if posted is None or run_id in self._watched:
                continue
            progress = Progress(run_id, posted[0], message_id=posted[1])
            progress.attached.set()
            self._watched[run_id] = progress  # from here on, its events (and its end) edit the message
            report = await self.orch.report(run_id)
            if report.run.state in RUN_TERMINAL and self._watched.get(run_id) is progress:
                # It ended before it was watched: its final message is sent; close the status message.
                del self._watched[run_id]
                await self._close_progress(progress, report)
                continue
            progress.load(report)
            self._changed(progress)

    async def _listen(self, sub: Subscription) -> None:
        while True:
            event = await sub.get()
            if sub.lagged:
                sub.lagged = False
                log.warning("the bot fell behind the run events; status messages are reloaded")
                for progress in list(self._watched.values()):
                    self._tasks.spawn(self._reload(progress), name=f"progress-reload-{progress.run_id}")
            self._on_event(event)

    def _on_event(self, event: RunEvent) -> None:
        progress = self._watched.get(event.run_id)
        if event.task_id is None and event.state in _TERMINAL:
            self._watched.pop(event.run_id, None)
            self._tasks.spawn(self._finish(event.run_id, progress), name=f"notify-run-{event.run_id}")
            return
        if progress is None:
            return
        if event.task_id is None:
            progress.run_state = RunState(event.state)
        else:
            progress.apply(event)
        self._changed(progress)

    async def _reload(self, progress: Progress) -> None:
        progress.load(await self.orch.report(progress.run_id))
        self._changed(progress)

    def _changed(self, progress: Progress) -> None:
        if progress.message_id is None or progress.done or progress.editor is not None:
            return
        progress.editor = self._tasks.spawn(self._edit_loop(progress), name=f"progress-edit-{progress.run_id}")

    async def _edit_loop(self, progress: Progress) -> None:
        loop = asyncio.get_running_loop()
        try:
            while not progress.done:
                wait = progress.last_edit + self.edit_interval - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                text = progress.render()
                if text == progress.shown:
                    return
                await self._edit(progress, text, progress_buttons(progress.run_id))
        finally:
            progress.editor = None

    async def _edit(self, progress: Progress, text: str, markup: InlineKeyboardMarkup | None) -> None:
        """Show ``text``; a failure is logged, never raised (the next change, or the final message, follows)."""
        assert progress.message_id is not None
        loop = asyncio.get_running_loop()
        try:
            await self.bot.edit_message_text(
                text=text, chat_id=progress.chat_id, message_id=progress.message_id, reply_markup=markup
            )
        except TelegramRetryAfter as exc:  # longer than the session waits: edit again once Telegram allows
            log.warning("status message of run %d: rate limited for %ss", progress.run_id, exc.retry_after)
            progress.last_edit = loop.time() + exc.retry_after - self.edit_interval
            return
        except TelegramBadRequest as exc:
            if "not modified" not in exc.message:
                log.warning("could not edit the status message of run %d: %s", progress.run_id, exc.message)
        except TelegramAPIError as exc:  # blocked, server error, network: nothing a retry right now would fix
            log.warning("could not edit the status message of run %d: %s", progress.run_id, exc)
            return
        progress.shown, progress.last_edit = text, loop.time()

    # -- final messages ---------------------------------------------------------------------

    async def _finish(self, run_id: int, progress: Progress | None) -> None:
        report = await self.orch.report(run_id)
        chat_id = report.run.notify_chat
        if progress is not None:
            chat_id = progress.chat_id
            try:
                await self._close_progress(progress, report)
            except Exception:  # whatever went wrong with the status message, the outcome must still be told
                log.exception("could not close the status message of run %d", run_id)
        origin = await self._schedule_of(report.run.trigger)
        # Unless someone watches it in the chat, a scheduled run is told of as its schedule's owner chose.
        quiet = origin is not None and origin[1] is not None and not tells(notify_of(origin[1]), report.run.state)
        if chat_id is not None and (progress is not None or not quiet):
            await self.deliver(chat_id, *final_message(report, self.settings.public_url, origin))

    async def _schedule_of(self, trigger: str) -> tuple[int, ScheduleRecord | None] | None:
        """The schedule that started a run (its record None if it was deleted since), if one did."""
        kind, _, number = trigger.partition(":")
        if kind != "schedule" or not number.isdigit():
            return None
        try:
            return int(number), await self.store.get_schedule(int(number))
        except NotFoundError:
            return int(number), None

    async def _close_progress(self, progress: Progress, report: RunReport) -> None:
        progress.done = True
        if progress.editor is not None:
            progress.editor.cancel()
            await asyncio.gather(progress.editor, return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(progress.attached.wait(), ATTACH_TIMEOUT_S)
        if progress.message_id is not None:
            progress.load(report)
            await self._edit(progress, progress.render(), None)

    async def deliver(self, chat_id: int, text: str, markup: InlineKeyboardMarkup | None = None) -> bool:
        """Send a notification; a chat that cannot be reached is logged, never raised.

        Rate limits are already waited out by the session, within its bound; one that outlasts it
        is logged like any other refusal rather than waited out a second time, unboundedly.
        """
        try:
            await send_long(self.bot, chat_id, text, reply_markup=markup)
        except TelegramAPIError as exc:
            log.warning("could not notify chat %s: %s", chat_id, exc)
            return False
        return True

    async def schedule_failed(self, record: ScheduleRecord, message: str) -> None:
        """Tell whoever made a schedule that it came due but could not start a run."""
        if record.chat_id is not None:
            await self.deliver(record.chat_id, texts.schedule_failed(record, message))

    # -- after a restart --------------------------------------------------------------------

    async def send_digest(self, run_ids: list[int]) -> int:
        """Tell the admins which runs were resumed; returns how many chats got it."""
        if not run_ids:
            return 0
        lines = []
        for run_id in run_ids:
            with contextlib.suppress(NotFoundError):
                lines.append(texts.digest_line((await self.orch.report(run_id)).run))
        text = texts.digest(lines)
        sent = 0
        for chat_id in sorted(await self.admin_chats()):
            sent += await self.deliver(chat_id, text)
        return sent

    async def admin_chats(self) -> set[int]:
        """Chats of the allow-listed users: their ids, and the @usernames that have talked to the bot."""
        ids, names = self.settings.allowed_users
        chats = set(ids)  # a user's private chat has the user's id
        for name in names:
            user = await self.store.find_user(name)
            if user is not None:
                chats.add(user.chat_id)
        return chats


def final_message(
    report: RunReport, public_url: str, schedule: tuple[int, ScheduleRecord | None] | None = None
) -> tuple[str, InlineKeyboardMarkup | None]:
    """The text and buttons of a run's final message (``schedule``: the one that started it)."""
    run = report.run
    failed = next((t for t in report.tasks.values() if t.state == TaskState.FAILED), None)
    text = texts.final(run, failed, texts.run_link(public_url, run.run_id))
    if schedule is not None:
        text += "\n" + texts.started_by_schedule(*schedule)
    has_archive = report.archive is not None and Path(report.archive).is_file()
    return text, final_buttons(run.run_id, run.state, has_archive)
