"""What nobody else handled: users without access are told so (with their id); others get a hint."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery, Message

from bot import texts


def router() -> Router:
    """The last router: catches every message and button press left over."""
    router = Router(name="fallback")
    router.message.register(leftover_message)
    router.callback_query.register(leftover_button)
    return router


async def leftover_message(message: Message, allowed: bool) -> None:
    """No access, unknown command, or not a command at all."""
    command = (message.text or "").startswith("/")
    if message.chat.type != "private" and not command:
        return  # in a group, only commands addressed to the bot get answers
    if not allowed:
        user = message.from_user
        await message.answer(texts.no_access(user.id if user else 0, user.username if user else None))
    elif command:
        await message.answer(texts.UNKNOWN_COMMAND)
    else:
        await message.answer(texts.NOT_A_COMMAND)


async def leftover_button(callback: CallbackQuery, allowed: bool) -> None:
    """A button of someone without access, or an outdated one."""
    if not allowed:
        await callback.answer(texts.NO_ACCESS_SHORT, show_alert=True)
    else:
        await callback.answer("This button is no longer valid.")
