"""Small helpers the handlers share: usage errors, argument parsing, who did it, where to answer."""

from __future__ import annotations

from aiogram.types import CallbackQuery, User

from orchestrator.errors import TaskFlowError


class UsageError(TaskFlowError):
    """A command used the wrong way; the message (HTML) says how to use it."""


def parse_id(args: str | None, usage: str) -> int:
    """The single positive integer argument of a command (``UsageError`` otherwise)."""
    text = (args or "").strip().lstrip("#")
    if not text.isdigit():
        raise UsageError(usage)
    return int(text)


def owner_of(user: User | None) -> str:
    """How a run or upload records who started it."""
    if user is None:
        return "telegram"
    return f"@{user.username}" if user.username else f"telegram:{user.id}"


def chat_of(callback: CallbackQuery) -> int:
    """The chat a button was pressed in (the user's private chat if the message is gone)."""
    if callback.message is not None:
        return callback.message.chat.id
    return callback.from_user.id
