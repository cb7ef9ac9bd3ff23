"""The bot as a part of the service: built from the settings and the core, started and stopped by main.py.

``start()`` subscribes to run events, then (in the named task ``telegram-polling``) deletes any
webhook, registers the command list and long-polls the Bot API at ``TELEGRAM_API_BASE``. With
``TELEGRAM_WEBHOOK_URL`` set it sets the webhook instead (task ``telegram-webhook``), and Telegram
posts updates to ``webhook``, aiogram's request handler, which checks the secret header. If the API
cannot be reached it keeps trying with a growing delay; the rest of the service runs meanwhile.
``stop()`` stops polling, lets updates being handled finish (briefly), stops every background task
and closes the HTTP session. Every request goes through ``RetryAfter`` (Telegram's 429s waited out,
within a bound), and each user's updates are handled one after the other (``OrderedDispatcher``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import AiogramError, TelegramUnauthorizedError
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import BotCommand
from aiogram.utils.token import TokenValidationError
from aiogram.webhook.aiohttp_server import SimpleRequestHandler

from bot import texts
from bot.access import UsersMiddleware, warn_about_usernames
from bot.handlers import build_router
from bot.notifier import Notifier
from bot.ordering import OrderedDispatcher
from bot.ratelimit import RetryAfter
from bot.sender import TelegramSender
from orchestrator.background import TaskSet
from orchestrator.engine import Orchestrator
from orchestrator.library import DagLibrary
from orchestrator.scheduler import Scheduler
from orchestrator.settings import Settings
from orchestrator.store import Store

log = logging.getLogger("taskflow.bot")

POLLING_TIMEOUT_S = 10
EDIT_INTERVAL_S = 1.5  # Telegram allows about one edit of a message per second
DRAIN_TIMEOUT_S = 5.0
MAX_RETRY_DELAY_S = 60.0


class TaskFlowBot:
    """The Telegram bot of the service."""

    def __init__(
        self,
        settings: Settings,
        orch: Orchestrator,
        library: DagLibrary,
        scheduler: Scheduler,
        store: Store,
        *,
        edit_interval: float = EDIT_INTERVAL_S,
        polling_timeout: int = POLLING_TIMEOUT_S,
    ) -> None:
        if not settings.telegram_bot_token:
            raise ValueError("TELEGRAM_BOT_TOKEN is not set")
        self.settings = settings
        self.orch = orch
        self.scheduler = scheduler
        self.polling_timeout = polling_timeout
        session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_base.rstrip("/")))
        # On the session, so every call waits out a 429: handler replies, edits, notifications, telegram_send.
        self.rate_limits = RetryAfter()
        session.middleware(self.rate_limits)
        defaults = DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True)
        try:
            self.bot = Bot(settings.telegram_bot_token, session=session, default=defaults)
        except TokenValidationError:
            raise ValueError("TELEGRAM_BOT_TOKEN does not look like a bot token (123456789:AA…)") from None
        self.store = store
        self.notifier = Notifier(self.bot, orch, store, settings, edit_interval=edit_interval)
        self.sender = TelegramSender(self.bot, store)
        self.ready = asyncio.Event()  # set while updates arrive: long polling runs, or the webhook is set
        self.polling_task: asyncio.Task[None] | None = None  # ends when polling stops for good (or the webhook is set)
        self._tasks = TaskSet()
        self._digested: set[int] = set()  # resumed runs the admins have been told about
        self.dispatcher = self._build_dispatcher(library)
        # Webhook mode: main.py serves this handler (aiogram's own) on the web server, at settings.webhook_path.
        self.webhook: SimpleRequestHandler | None = None
        if settings.telegram_webhook_url:
            secret = settings.telegram_webhook_secret
            self.webhook = SimpleRequestHandler(self.dispatcher, self.bot, secret_token=secret)

    def _build_dispatcher(self, library: DagLibrary) -> OrderedDispatcher:
        dispatcher = OrderedDispatcher(
            storage=MemoryStorage(),
            name="taskflow",
            settings=self.settings,
            orch=self.orch,
            store=self.store,
            library=library,
            scheduler=self.scheduler,
            notifier=self.notifier,
        )
        dispatcher.update.outer_middleware(UsersMiddleware(self.store, self.settings))
        dispatcher.include_router(build_router())
        dispatcher.startup.register(self._on_startup)
        dispatcher.shutdown.register(self._on_shutdown)
        return dispatcher

    async def start(self) -> None:
        """Follow runs, become the orchestrator's message sender, and start long polling (in the background).

        Call it before resuming unfinished runs, so their messages can be delivered.
        """
        warn_about_usernames(self.settings)
        await self.notifier.start()
        self.scheduler.on_error = self.notifier.schedule_failed
        if self.orch.resources.sender is None:
            self.orch.resources.sender = self.sender
        if self.webhook is None:
            self.polling_task = self._tasks.spawn(self._connect(self._start_polling), name="telegram-polling")
        else:
            self.polling_task = self._tasks.spawn(self._connect(self._webhook_set), name="telegram-webhook")

    async def notify_resumed(self, run_ids: Sequence[int]) -> None:
        """Send the admins one digest of runs resumed after a restart (in the background; never twice a run)."""
        fresh = [run_id for run_id in run_ids if run_id not in self._digested]
        if fresh:
            self._digested.update(fresh)
            self._tasks.spawn(self.notifier.send_digest(fresh), name="telegram-resume-digest")
            self._tasks.spawn(self.notifier.reattach(fresh), name="telegram-reattach")

    async def stop(self) -> None:
        """Stop polling and every background task, and close the HTTP session."""
        self.sender.close()
        if self.orch.resources.sender is self.sender:
            self.orch.resources.sender = None
        if self.scheduler.on_error == self.notifier.schedule_failed:
            self.scheduler.on_error = None
        if self.ready.is_set() and self.webhook is not None:
            self.ready.clear()
            # Telegram keeps the updates meanwhile: the next start (by webhook or polling) gets them.
            with contextlib.suppress(AiogramError, OSError, TimeoutError):
                await asyncio.wait_for(self.bot.delete_webhook(drop_pending_updates=False), DRAIN_TIMEOUT_S)
        elif self.ready.is_set():
            with contextlib.suppress(RuntimeError, TimeoutError):
                await asyncio.wait_for(self.dispatcher.stop_polling(), DRAIN_TIMEOUT_S)
        await self.dispatcher.drain(DRAIN_TIMEOUT_S)
        await self._tasks.close()
        await self.notifier.stop()
        await self.bot.session.close()
        log.info("Telegram bot stopped")

    def health(self) -> str | None:
        """None while the bot receives updates; else what is wrong (for ``GET /healthz``)."""
        if self.webhook is not None:
            return None if self.ready.is_set() else "the webhook is not set: the Bot API has not answered"
        if self.polling_task is None or self.polling_task.done():
            return "polling has stopped"
        if not self.ready.is_set():
            return "not polling yet: the Bot API has not answered"
        return None

    def task_names(self) -> list[str]:
        """Names of the bot's background tasks still going (polling, notifier, sends and edits)."""
        return sorted(self._tasks.names() + self.notifier.task_names())

    async def _on_startup(self) -> None:
        self.ready.set()

    async def _on_shutdown(self) -> None:
        self.ready.clear()

    async def _connect(self, receive: Callable[[], Awaitable[None]]) -> None:
        """Reach the Bot API, then ``receive`` updates; retried with a growing delay while the API cannot be reached."""
        delay = 1.0
        while True:
            try:
                await self._prepare()
                await receive()
                return
            except TelegramUnauthorizedError:
                log.error("the Bot API refused TELEGRAM_BOT_TOKEN; the bot is off")
                return
            except (AiogramError, OSError) as exc:  # the API is unreachable: keep the rest running, retry
                base = self.settings.telegram_api_base
                log.warning("Telegram Bot API at %s: %s; retrying in %.0fs", base, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY_S)

    async def _start_polling(self) -> None:
        await self.dispatcher.start_polling(
            self.bot, handle_signals=False, close_bot_session=False, polling_timeout=self.polling_timeout
        )

    async def _webhook_set(self) -> None:
        self.ready.set()
        log.info("Telegram sends updates to %s", self.settings.telegram_webhook_url)

    async def _prepare(self) -> None:
        me = await self.bot.get_me()
        if self.webhook is None:
            await self.bot.delete_webhook(drop_pending_updates=False)  # long polling and a webhook exclude each other
        else:
            assert self.settings.telegram_webhook_url is not None
            await self.bot.set_webhook(
                self.settings.telegram_webhook_url,
                secret_token=self.settings.telegram_webhook_secret,
                allowed_updates=self.dispatcher.resolve_used_update_types(),
                drop_pending_updates=False,
            )
        await self.bot.set_my_commands([BotCommand(command=c, description=d) for c, d in texts.COMMANDS])
        log.info("Telegram bot @%s is on (Bot API at %s)", me.username, self.settings.telegram_api_base)
        await self.notify_resumed(self.orch.resumed)  # runs the orchestrator resumed when it started
