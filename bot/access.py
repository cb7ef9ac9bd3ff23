"""Who may use the bot: every update refreshes its sender in the users table, then the allow-list decides.

Everyone is remembered (``telegram_send`` may address anyone who started the bot), but only users on
``TELEGRAM_ALLOWED_USERS`` (by id or by @username) get past ``Allowed``; the rest reach the fallback
router, which tells them they have no access and shows their id.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.filters import Filter
from aiogram.types import Chat, TelegramObject, User

from orchestrator.settings import Settings
from orchestrator.store import Store

log = logging.getLogger("taskflow.bot")

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


def is_allowed(settings: Settings, user: User) -> bool:
    """Whether ``user`` is on the allow-list (by id, or by @username, case-insensitively)."""
    ids, names = settings.allowed_users
    return user.id in ids or (user.username is not None and user.username.lower() in names)


def warn_about_usernames(settings: Settings) -> None:
    """Log a warning when the allow-list names people by @username: whoever holds the name gets in."""
    _, names = settings.allowed_users
    if names:
        listed = ", ".join(f"@{name}" for name in sorted(names))
        log.warning(
            "TELEGRAM_ALLOWED_USERS names %s by username: whoever holds such a name now (after a rename, "
            "someone else) is let in; list user ids instead (an unknown user is told their id)",
            listed,
        )


class UsersMiddleware(BaseMiddleware):
    """Stores (or refreshes) the user behind each update and puts ``allowed`` into the handler data."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        """Refresh the user, decide access, go on."""
        user: User | None = data.get("event_from_user")
        chat: Chat | None = data.get("event_chat")
        if user is not None and not user.is_bot:
            # Usernames change: refresh on every update, so telegram_send finds people by their current one.
            chat_id = chat.id if chat is not None and chat.type == "private" else user.id
            await self.store.upsert_user(user.id, user.username, chat_id, user.first_name)
        data["allowed"] = user is not None and is_allowed(self.settings, user)
        return await handler(event, data)


class Allowed(Filter):
    """Passes for allow-listed users only (``UsersMiddleware`` decided)."""

    async def __call__(self, event: TelegramObject, allowed: bool = False) -> bool:
        """The decision made for this update."""
        return allowed
