"""/dags, /run and DAG uploads (a .json config, or a 4diac file turned into one)."""

from __future__ import annotations

import asyncio
import importlib
import io
import re
from pathlib import PurePath
from typing import Any

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Document, Message, User

from bot import texts
from bot.chat import answer_long
from bot.common import UsageError, chat_of, owner_of
from bot.keyboards import MAX_BUTTONS, RunDag, dag_buttons, resolve
from bot.notifier import Notifier
from orchestrator.engine import Orchestrator
from orchestrator.errors import ConfigError, NotFoundError
from orchestrator.library import DagLibrary
from orchestrator.limits import MAX_4DIAC_ZIP_BYTES, MAX_CONFIG_BYTES, MAX_XML_BYTES
from orchestrator.runparams import parse_assignments
from orchestrator.validation import parse_config

FOURDIAC_SUFFIXES = frozenset({".sys", ".fbt", ".sub", ".xml", ".zip"})
_CAPTION_APP = re.compile(r"(?:^|\s)app\s*=\s*(\S+)", re.IGNORECASE)
_ALL_PROBLEMS = re.compile(r"(?:^|\s)all-problems(?:\s|$)", re.IGNORECASE)


def router() -> Router:
    """DAG listing, running and uploading."""
    router = Router(name="dags")
    router.message.register(list_dags, Command("dags"))
    router.message.register(run_command, Command("run"))
    router.callback_query.register(run_button, RunDag.filter())
    router.message.register(upload, F.document)
    return router


async def list_dags(message: Message, library: DagLibrary) -> None:
    """Every DAG, with a button to run each."""
    dags = await library.list()
    if not dags:
        await message.answer(texts.no_dags(library.settings.dags_dir))
        return
    ids = [d.dag_id for d in dags]
    text = texts.dag_list(dags, min(len(ids), MAX_BUTTONS))
    await answer_long(message, text, reply_markup=dag_buttons(ids, RunDag))


async def run_command(
    message: Message, command: CommandObject, library: DagLibrary, orch: Orchestrator, notifier: Notifier
) -> None:
    """/run <dag_id> [name=value ...] starts a run; a bare /run offers the DAGs as buttons."""
    dag_id, _, rest = (command.args or "").strip().partition(" ")
    if not dag_id:
        dags = await library.list()
        if not dags:
            await message.answer(texts.no_dags(library.settings.dags_dir))
        else:
            await message.answer(texts.PICK_DAG_TO_RUN, reply_markup=dag_buttons([d.dag_id for d in dags], RunDag))
        return
    try:
        params = parse_assignments(rest)
    except ValueError as exc:
        example = f"<code>/run {texts.esc(dag_id)} city=Paris days=3</code>"
        raise UsageError(f"{texts.esc(str(exc))}: give params as {example}") from None
    await start_run(dag_id, message.chat.id, message.from_user, library, orch, notifier, params or None)


async def run_button(
    callback: CallbackQuery, callback_data: RunDag, library: DagLibrary, orch: Orchestrator, notifier: Notifier
) -> None:
    """A DAG button was pressed."""
    dag_id = resolve(callback_data.dag, [d.dag_id for d in await library.list()])
    if dag_id is None:
        raise NotFoundError("that DAG no longer exists")
    await callback.answer(f"Starting {dag_id}…")
    await start_run(dag_id, chat_of(callback), callback.from_user, library, orch, notifier)


async def start_run(
    dag_id: str,
    chat_id: int,
    user: User | None,
    library: DagLibrary,
    orch: Orchestrator,
    notifier: Notifier,
    params: dict[str, Any] | None = None,
) -> int:
    """Start a run for a chat and post its live status message."""
    config = await library.get(dag_id)
    run_id = await orch.submit(config, trigger="telegram", owner=owner_of(user), notify_chat=chat_id, params=params)
    progress = notifier.watch(run_id, chat_id)  # before any await: the run may end very soon
    await notifier.post(progress)
    return run_id


async def upload(message: Message, bot: Bot, library: DagLibrary) -> None:
    """A document: a DAG config to add or replace, or a 4diac file to import."""
    document = message.document
    assert document is not None
    name = document.file_name or "document"
    suffix = PurePath(name).suffix.lower()
    if suffix != ".json" and suffix not in FOURDIAC_SUFFIXES:
        await message.answer(texts.unsupported_document(name))
        return
    limit = {".json": MAX_CONFIG_BYTES, ".zip": MAX_4DIAC_ZIP_BYTES}.get(suffix, MAX_XML_BYTES)
    data = await _download(bot, document, limit)
    if data is None:
        await message.answer(texts.document_too_big(name, limit))
        return
    source = f"telegram {owner_of(message.from_user)}: {name}"
    if suffix == ".json":
        # Parsed under the file's own name, so the report reads "hello.json is invalid".
        config = parse_config(data, source=name, allow_shell=library.settings.allow_shell)
        record = await library.save(config, source=source)
        await message.answer(texts.dag_saved(record, name), reply_markup=dag_buttons([record.dag_id], RunDag))
    else:
        await _import_4diac(message, library, data, name, source)


async def _download(bot: Bot, document: Document, limit: int) -> bytes | None:
    if document.file_size is not None and document.file_size > limit:
        return None
    buffer = io.BytesIO()
    await bot.download(document, destination=buffer)
    data = buffer.getvalue()
    return data if len(data) <= limit else None


async def _import_4diac(message: Message, library: DagLibrary, data: bytes, name: str, source: str) -> None:
    try:  # imported here: the 4diac importer is optional for the rest of the bot
        fourdiac = importlib.import_module("orchestrator.fourdiac")
    except ImportError:
        await message.answer(texts.FOURDIAC_MISSING)
        return
    app = _caption_app(message.caption)
    try:
        # Parsing a large XML file takes a while: keep the event loop free. A .zip is a project: its
        # system, its type files and a taskflow-map.json (a document has no other place for a map).
        result = await asyncio.to_thread(fourdiac.import_upload, data, filename=name, app=app, hints=fourdiac.BOT_HINTS)
    except fourdiac.AppChoiceError as exc:
        raise exc.with_hint("send the file again with the caption app=NAME") from None
    except ConfigError as exc:
        if _ALL_PROBLEMS.search(message.caption or ""):
            raise
        raise fourdiac.summarised(exc, "send the file again with the caption all-problems to list each one") from None
    record = await library.save(result.config, source=source)
    text = texts.imported(record, name, result.schedule, result.notes)
    await answer_long(message, text, reply_markup=dag_buttons([record.dag_id], RunDag))


def _caption_app(caption: str | None) -> str | None:
    """The application a caption like ``app=Plant`` chooses (a document has no other place for options)."""
    match = _CAPTION_APP.search(caption or "")
    if match is None:
        return None
    return match[1].strip("'\"") or None
