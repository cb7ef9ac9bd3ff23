"""Sending text to a chat: long texts are split at line ends, HTML is never cut inside a tag.

Telegram refuses a message over 4096 characters, and refuses HTML whose tags do not balance; a
split closes the tags still open at the end of a piece and opens them again in the next one.
"""

from __future__ import annotations

import re
from typing import Any

from aiogram import Bot
from aiogram.types import InlineKeyboardMarkup, Message

from bot.texts import MESSAGE_LIMIT

_TAG = re.compile(r"<(/?)([a-zA-Z0-9-]+)[^>]*>")
_RESERVE = 64  # room left in each piece for the closing and re-opening tags


def split_text(text: str, limit: int = MESSAGE_LIMIT, *, html: bool = True) -> list[str]:
    """Cut ``text`` into pieces of at most ``limit`` characters, at line ends where possible."""
    if len(text) <= limit:
        return [text]
    budget = limit - _RESERVE if html else limit
    pieces: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > budget:  # one huge line: cut it where no tag or entity is broken
            head, line = _cut_line(line, budget, html)
            if current:
                pieces.append(current)
                current = ""
            pieces.append(head)
        candidate = f"{current}\n{line}" if current else line
        if current and len(candidate) > budget:
            pieces.append(current)
            current = line
        else:
            current = candidate
    if current:
        pieces.append(current)
    return _balance(pieces) if html else pieces


def _cut_line(line: str, limit: int, html: bool) -> tuple[str, str]:
    cut = limit
    if html:
        head = line[:limit]
        if head.rfind("<") > head.rfind(">"):
            cut = head.rfind("<")
        if head.rfind("&") > head.rfind(";"):
            cut = min(cut, head.rfind("&"))
        cut = cut or limit
    return line[:cut], line[cut:]


def _balance(pieces: list[str]) -> list[str]:
    out: list[str] = []
    carried: list[tuple[str, str]] = []  # (name, opening tag) open at the end of the last piece
    for piece in pieces:
        text = "".join(tag for _, tag in carried) + piece
        carried = _open_tags(text)
        out.append(text + "".join(f"</{name}>" for name, _ in reversed(carried)))
    return out


def _open_tags(text: str) -> list[tuple[str, str]]:
    stack: list[tuple[str, str]] = []
    for match in _TAG.finditer(text):
        closing, name = match.group(1), match.group(2).lower()
        if not closing:
            stack.append((name, match.group(0)))
        elif stack and stack[-1][0] == name:
            stack.pop()
    return stack


async def send_long(
    bot: Bot,
    chat_id: int,
    text: str,
    *,
    reply_markup: InlineKeyboardMarkup | None = None,
    **kwargs: Any,
) -> list[Message]:
    """Send ``text`` (HTML) in as many messages as it takes; the keyboard goes on the last one."""
    pieces = split_text(text)
    sent = []
    for n, piece in enumerate(pieces, start=1):
        markup = reply_markup if n == len(pieces) else None
        sent.append(await bot.send_message(chat_id, piece, reply_markup=markup, **kwargs))
    return sent


async def answer_long(message: Message, text: str, *, reply_markup: InlineKeyboardMarkup | None = None) -> Message:
    """Reply in the chat of ``message``; returns the last message sent."""
    assert message.bot is not None
    sent = await send_long(message.bot, message.chat.id, text, reply_markup=reply_markup)
    return sent[-1]
