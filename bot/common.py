"""Small helpers the handlers share: usage errors, argument parsing, who did it, where to answer."""

from __future__ import annotations

from aiogram.types import CallbackQuery, User

from bot.texts import cut
from orchestrator.errors import NotFoundError, TaskFlowError
from orchestrator.limits import MAX_ROW_ID


class UsageError(TaskFlowError):
    """A command used the wrong way; the message (HTML) says how to use it."""


def parse_id(args: str | None, usage: str, kind: str) -> int:
    """The single id argument of a command (``UsageError`` otherwise), a ``kind`` such as "run"."""
    text = (args or "").strip().lstrip("#")
    # ASCII only: str.isdigit() also takes "²" or "٣", which int() refuses or reads unexpectedly.
    if not (text.isascii() and text.isdigit()):
        raise UsageError(usage)
    digits = text.lstrip("0") or "0"
    # Compared by length first: int() refuses more than 4300 digits, and SQLite would overflow anyway.
    if len(digits) > len(str(MAX_ROW_ID)) or int(digits) > MAX_ROW_ID:
        raise NotFoundError(f"{kind} {cut(digits, 40)} does not exist")
    return int(digits)


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
