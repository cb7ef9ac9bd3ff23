"""The Telegram bot (aiogram 3): commands, uploads, schedules, filename edits, run notifications.

``TaskFlowBot`` is what main.py builds and starts; ``TelegramSender`` (its ``.sender``) is what the
``telegram_send`` operation uses. ``bot/`` imports ``orchestrator/`` and never ``web/``.
"""

from __future__ import annotations

from bot.sender import TelegramSender
from bot.service import TaskFlowBot

__all__ = ["TaskFlowBot", "TelegramSender"]
