"""The bot's routers, one per feature, combined in one place.

Routers are built by factories (a router attaches to one dispatcher only). Order matters: errors
first, then /start (for everyone), then the features behind the allow-list, then the fallback that
answers whatever is left (and tells users without access that they have none).
"""

from __future__ import annotations

from aiogram import Router

from bot.access import Allowed
from bot.handlers import dags, errors, fallback, filenames, runs, schedules, start


def build_router() -> Router:
    """A fresh tree of every router of the bot."""
    root = Router(name="taskflow")
    # On the root, before any handler: a command ends a filename conversation whoever answers it.
    end_flow = filenames.EndFlowOnCommand()
    root.message.outer_middleware(end_flow)
    root.callback_query.outer_middleware(end_flow)
    root.include_router(errors.router())
    root.include_router(start.public_router())
    allowed = Router(name="allowed")
    allowed.message.filter(Allowed())
    allowed.callback_query.filter(Allowed())
    allowed.include_routers(
        start.router(),
        filenames.router(),
        dags.router(),
        runs.router(),
        schedules.router(),
    )
    root.include_router(allowed)
    root.include_router(fallback.router())
    return root
