"""``telegram_send``: a message (and optionally a file of the run folder) to a bot user."""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field, model_validator

from operations.base import OperationContext, OperationParams
from operations.errors import PermanentOperationError
from operations.filenames import Filename
from operations.registry import operation


class TelegramSendParams(OperationParams):
    """Who gets the message (``username`` of a user who started the bot, or ``chat_id``) and what."""

    username: str | None = Field(default=None, pattern=r"^@?[A-Za-z0-9_]{3,64}$")
    chat_id: int | None = None
    text: Any = ""
    file: Filename | None = None

    @model_validator(mode="after")
    def _one_recipient(self) -> TelegramSendParams:
        if (self.username is None) == (self.chat_id is None):
            raise ValueError("give exactly one of 'username' and 'chat_id'")
        return self


@operation("telegram_send", remote_ok=False)
async def telegram_send(ctx: OperationContext, params: TelegramSendParams) -> dict[str, Any]:
    """Send text (and a file of the run folder) through the service's Telegram bot."""
    sender = ctx.resources.sender
    if sender is None:
        raise PermanentOperationError("the Telegram bot is off (TELEGRAM_BOT_TOKEN is not set)")
    text = params.text if isinstance(params.text, str) else _as_text(params.text)
    file = ctx.path(params.file) if params.file else None
    if file is not None and not file.is_file():
        raise PermanentOperationError(f"file {params.file!r} does not exist in the run folder")
    return await sender.send(username=params.username, chat_id=params.chat_id, text=text, file=file)


def _as_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)
