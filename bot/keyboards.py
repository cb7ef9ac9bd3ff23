"""Inline buttons and the callback data they carry.

Telegram allows 64 bytes of callback data, and DAG and task ids may be 64 characters long, so an id
longer than ``_KEY_LIMIT`` travels as a short hash (``~…``) and is found again among the candidates
when the button is pressed. Ids never contain ``~`` or ``:``, so the two forms cannot clash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from orchestrator.states import RunState

MAX_BUTTONS = 48  # Telegram allows 100; a longer list is unusable on a phone anyway
_KEY_LIMIT = 40


class RunDag(CallbackData, prefix="run"):
    """Start a run of a DAG."""

    dag: str


class RunAction(CallbackData, prefix="act"):
    """Something to do with a run: ``zip`` (send its archive), ``rerun`` (from failure), ``cancel``."""

    action: str
    run_id: int


class PickDag(CallbackData, prefix="fnd"):
    """Filename flow, step 1: the DAG."""

    dag: str


class PickTask(CallbackData, prefix="fnt"):
    """Filename flow, step 2: the task (the DAG is in the conversation's state)."""

    task: str


class AbortFlow(CallbackData, prefix="fnx"):
    """Leave the filename flow."""

    why: str = "cancel"


def key_of(name: str) -> str:
    """``name`` as it travels in callback data."""
    if len(name) <= _KEY_LIMIT:
        return name
    return "~" + hashlib.sha256(name.encode()).hexdigest()[:24]


def resolve(key: str, names: Iterable[str]) -> str | None:
    """The name among ``names`` that ``key`` stands for, if any."""
    for name in names:
        if key_of(name) == key:
            return name
    return None


def dag_buttons(dag_ids: Sequence[str], factory: type[RunDag] | type[PickDag]) -> InlineKeyboardMarkup:
    """One button per DAG (the first ``MAX_BUTTONS``), two to a row."""
    builder = InlineKeyboardBuilder()
    for dag_id in dag_ids[:MAX_BUTTONS]:
        builder.button(text=dag_id, callback_data=factory(dag=key_of(dag_id)))
    builder.adjust(2)
    if factory is PickDag:
        builder.row(_abort_button())
    return builder.as_markup()


def task_buttons(names: Mapping[str, str]) -> InlineKeyboardMarkup:
    """One button per task (id → the file it saves its output as), and Cancel."""
    builder = InlineKeyboardBuilder()
    for task_id, name in list(names.items())[:MAX_BUTTONS]:
        builder.button(text=f"{task_id} → {name}", callback_data=PickTask(task=key_of(task_id)))
    builder.adjust(1)
    builder.row(_abort_button())
    return builder.as_markup()


def abort_only() -> InlineKeyboardMarkup:
    """Just a Cancel button (while waiting for a typed name)."""
    return InlineKeyboardMarkup(inline_keyboard=[[_abort_button()]])


def _abort_button() -> InlineKeyboardButton:
    return InlineKeyboardButton(text="✖ Cancel", callback_data=AbortFlow().pack())


def progress_buttons(run_id: int) -> InlineKeyboardMarkup:
    """Under a running run's status message."""
    button = InlineKeyboardButton(text="✖ Cancel run", callback_data=RunAction(action="cancel", run_id=run_id).pack())
    return InlineKeyboardMarkup(inline_keyboard=[[button]])


def final_buttons(run_id: int, state: RunState, has_archive: bool) -> InlineKeyboardMarkup | None:
    """Under a run's final message: its archive, and a re-run from the failure when it failed."""
    row = []
    if has_archive:
        row.append(InlineKeyboardButton(text="📦 Archive", callback_data=RunAction(action="zip", run_id=run_id).pack()))
    if state in (RunState.FAILED, RunState.CANCELLED):
        data = RunAction(action="rerun", run_id=run_id).pack()
        row.append(InlineKeyboardButton(text="🔁 Re-run from failure", callback_data=data))
    return InlineKeyboardMarkup(inline_keyboard=[row]) if row else None
