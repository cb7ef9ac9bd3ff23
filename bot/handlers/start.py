"""/start (for everyone: it registers the user) and /help."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandStart
from aiogram.types import Message

from bot import texts


def public_router() -> Router:
    """/start, answered for everyone."""
    router = Router(name="start")
    router.message.register(start, CommandStart())
    return router


def router() -> Router:
    """/help, for allowed users."""
    router = Router(name="help")
    router.message.register(show_help, Command("help"))
    return router


async def start(message: Message, allowed: bool) -> None:
    """Greet the user (the middleware has already stored them) and show help, or say they lack access."""
    user = message.from_user
    if user is None:
        return
    if allowed:
        await message.answer(texts.welcome(user.first_name))
    else:
        await message.answer(texts.registered_no_access(user.id, user.username))


async def show_help(message: Message) -> None:
    """The command list."""
    await message.answer(texts.HELP)
