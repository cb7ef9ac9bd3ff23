"""/filename: the one edit a chat user may make to a DAG, by command or by buttons.

``/filename <dag_id> <task_id> <new_name>`` does it at once. With fewer arguments a short
conversation (aiogram FSM) asks for the rest in one message edited in place: the DAG (buttons), the
task (buttons; only tasks that write an output file, each with the file's name) and the name (typed).
A name the core refuses is explained and asked for again. The Cancel button, a bare ``/cancel``, or
any other command (or a button of another feature) ends the conversation, and the question says so,
so text typed later is never taken for a name and no stale Cancel button stays.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message, TelegramObject

from bot import texts
from bot.keyboards import AbortFlow, PickDag, PickTask, abort_only, dag_buttons, resolve, task_buttons
from orchestrator.errors import NotFoundError
from orchestrator.library import DagLibrary, output_name, output_names
from orchestrator.models import DagConfig, TaskConfig


class FilenameFlow(StatesGroup):
    """Where the conversation stands."""

    dag = State()
    task = State()
    name = State()


FLOW_BUTTONS = frozenset({PickDag.__prefix__, PickTask.__prefix__, AbortFlow.__prefix__})


class EndFlowOnCommand(BaseMiddleware):
    """Ends a waiting filename conversation when a command or another feature's button arrives.

    Without it, "/filename report render", then "/dags", then "notes for later" would rename the
    output to "notes for later". A bare ``/cancel`` (``/cancel <run_id>`` is for runs) only ends it.
    """

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        """Clear the conversation first when ``event`` leaves it, then handle ``event``."""
        state: FSMContext | None = data.get("state")
        if state is None or data.get("raw_state") not in FilenameFlow or not _leaves_flow(event):
            return await handler(event, data)
        pending = await state.get_data()
        await state.clear()
        data["raw_state"] = None  # the state filters of the handlers read this copy
        command = _command_of(event) if isinstance(event, Message) else None
        # Visibly: the question says it has ended, and its buttons go.
        await end_prompt(data["bot"], pending, texts.filename_prompt_ended(command[0] if command else "another button"))
        if isinstance(event, Message) and command == ("/cancel", False):
            await event.answer(texts.FILENAME_ABORTED)
            return None
        return await handler(event, data)


def _leaves_flow(event: TelegramObject) -> bool:
    if isinstance(event, CallbackQuery):
        return (event.data or "").split(":", 1)[0] not in FLOW_BUTTONS
    return isinstance(event, Message) and _command_of(event) is not None


def _command_of(message: Message) -> tuple[str, bool] | None:
    """(``/command`` without a @bot suffix, whether it has arguments) of a command message, else None."""
    words = (message.text or "").split()
    if not words or not words[0].startswith("/"):
        return None
    return words[0].split("@", 1)[0].lower(), len(words) > 1


def router() -> Router:
    """The command, the buttons and the typed name."""
    router = Router(name="filenames")
    router.message.register(filename_command, Command("filename"))
    router.callback_query.register(dag_picked, PickDag.filter())
    router.callback_query.register(task_picked, PickTask.filter(), FilenameFlow.task)
    router.callback_query.register(aborted, AbortFlow.filter(), StateFilter(FilenameFlow))
    router.callback_query.register(stale_abort, AbortFlow.filter())
    router.message.register(name_typed, FilenameFlow.name, F.text, ~F.text.startswith("/"))
    return router


async def filename_command(message: Message, command: CommandObject, library: DagLibrary, state: FSMContext) -> None:
    """/filename [dag_id [task_id [new_name]]]."""
    args = (command.args or "").split(maxsplit=2)
    if len(args) == 3:
        await state.clear()
        await _apply(message, library, *args)
    elif len(args) == 2:
        await _ask_name(message, state, await library.get(args[0]), args[1], edit=False)
    elif len(args) == 1:
        await _ask_task(message, state, library, args[0], edit=False)
    else:
        dags = await library.list()
        if not dags:
            await message.answer(texts.no_dags(library.settings.dags_dir))
            return
        await state.set_state(FilenameFlow.dag)
        markup = dag_buttons([d.dag_id for d in dags], PickDag)
        await _show(message, state, texts.PICK_DAG_FOR_FILENAME, markup, edit=False)


async def dag_picked(callback: CallbackQuery, callback_data: PickDag, library: DagLibrary, state: FSMContext) -> None:
    """Step 1 done: show the DAG's tasks, in place of the DAGs."""
    dag_id = resolve(callback_data.dag, [d.dag_id for d in await library.list()])
    if dag_id is None:
        raise NotFoundError("that DAG no longer exists")
    await callback.answer()
    assert isinstance(callback.message, Message)
    await _ask_task(callback.message, state, library, dag_id, edit=True)


async def task_picked(callback: CallbackQuery, callback_data: PickTask, library: DagLibrary, state: FSMContext) -> None:
    """Step 2 done: ask for the name, in place of the tasks."""
    dag_id = (await state.get_data())["dag_id"]
    config = await library.get(dag_id)
    task_id = resolve(callback_data.task, [t.id for t in config.tasks])
    if task_id is None:
        raise NotFoundError(f"DAG {dag_id!r} no longer has that task")
    await callback.answer()
    assert isinstance(callback.message, Message)
    await _ask_name(callback.message, state, config, task_id, edit=True)


async def name_typed(message: Message, bot: Bot, library: DagLibrary, state: FSMContext) -> None:
    """Step 3: the name. A refused one raises ConfigError (explained) and the question stands."""
    data = await state.get_data()
    assert message.text is not None
    dag_id, task_id, filename = data["dag_id"], data["task_id"], message.text.strip()
    await library.set_filename(dag_id, task_id, filename)
    await state.clear()
    # The question is answered: its Cancel button goes, before the confirmation.
    await end_prompt(bot, data, texts.filename_prompt_answered(dag_id, task_id, filename))
    await message.answer(texts.filename_changed(dag_id, task_id, filename))


async def aborted(callback: CallbackQuery, state: FSMContext) -> None:
    """Cancel pressed while the conversation waits: forget it."""
    await state.clear()
    await callback.answer()
    if isinstance(callback.message, Message):
        await callback.message.edit_text(texts.FILENAME_ABORTED)


async def stale_abort(callback: CallbackQuery) -> None:
    """Cancel of a question that has ended already: say so and take the button away."""
    await callback.answer(texts.FILENAME_PROMPT_GONE)
    if isinstance(callback.message, Message):
        with contextlib.suppress(TelegramAPIError):
            await callback.message.edit_reply_markup(reply_markup=None)


async def end_prompt(bot: Bot, data: dict[str, Any], text: str) -> None:
    """Edit the conversation's last question to ``text``, without buttons (it may be gone: never raises)."""
    prompt = data.get("prompt")
    if not prompt:
        return
    with contextlib.suppress(TelegramAPIError):
        await bot.edit_message_text(text=text, chat_id=prompt[0], message_id=prompt[1])


async def _show(
    message: Message, state: FSMContext, text: str, markup: InlineKeyboardMarkup | None, *, edit: bool
) -> None:
    """A step of the conversation: in place of the previous one (``edit``) or as a new message."""
    if edit:
        await message.edit_text(text, reply_markup=markup)
        shown = message
    else:
        shown = await message.answer(text, reply_markup=markup)
    await state.update_data(prompt=[shown.chat.id, shown.message_id])


async def _ask_task(message: Message, state: FSMContext, library: DagLibrary, dag_id: str, *, edit: bool) -> None:
    config = await library.get(dag_id)
    names = output_names(config)
    if not names:
        await _show(message, state, texts.no_output_tasks(config.dag_id), None, edit=edit)
        await state.clear()
        return
    await state.set_state(FilenameFlow.task)
    await state.update_data(dag_id=config.dag_id)
    await _show(message, state, texts.pick_task(config.dag_id), task_buttons(names), edit=edit)


async def _ask_name(message: Message, state: FSMContext, config: DagConfig, task_id: str, *, edit: bool) -> None:
    task = _task(config, task_id)
    current = output_name(config, task.id)  # ConfigError for a task that writes no file
    await state.set_state(FilenameFlow.name)
    await state.update_data(dag_id=config.dag_id, task_id=task.id)
    text = texts.ask_filename(config.dag_id, task.id, current, chosen=task.filename is not None)
    await _show(message, state, text, abort_only(), edit=edit)


async def _apply(message: Message, library: DagLibrary, dag_id: str, task_id: str, filename: str) -> None:
    await library.set_filename(dag_id, task_id, filename)
    await message.answer(texts.filename_changed(dag_id, task_id, filename))


def _task(config: DagConfig, task_id: str) -> TaskConfig:
    try:
        return config.task(task_id)
    except KeyError:
        raise NotFoundError(f"DAG {config.dag_id!r} has no task {task_id!r}") from None
