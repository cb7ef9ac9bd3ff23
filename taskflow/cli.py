"""TaskFlow's composition root and command line: the ``taskflow`` command (``python main.py`` in a checkout).

``taskflow`` with no sub-command starts the service (orchestrator, scheduler, web server, and the bot when
``TELEGRAM_BOT_TOKEN`` is set). The sub-commands run one DAG in the foreground, validate a file,
print the config's JSON Schema, resume or re-run runs, import 4diac files, and delete old runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from rich.console import Console
from rich.text import Text

from orchestrator.client import ServiceClient
from orchestrator.engine import Orchestrator
from orchestrator.errors import ConfigError, Problem, TaskFlowError
from orchestrator.library import DagLibrary
from orchestrator.limits import MAX_4DIAC_ZIP_BYTES, MAX_XML_BYTES
from orchestrator.logsetup import setup_logging
from orchestrator.ownership import DatabaseInUseError
from orchestrator.process import tune_gc
from orchestrator.records import RunReport
from orchestrator.runparams import parse_assignment
from orchestrator.settings import Settings
from orchestrator.states import RunState
from orchestrator.store import Store
from orchestrator.validation import config_schema, parse_config
from taskflow import EXAMPLES

if TYPE_CHECKING:
    from aiohttp import web

    from bot import TaskFlowBot

log = logging.getLogger("taskflow")
_POLL_S = 0.25  # how often a run the service executes is looked at, when no progress is shown
_SERVICE_START_S = 30.0  # how long a command waits for a starting service's API (it resumes runs first)


# -- the service ----------------------------------------------------------------------------


async def serve(settings: Settings) -> None:
    """Run every part of the service until SIGINT or SIGTERM."""
    from bot import TaskFlowBot
    from orchestrator.retention import Retention
    from orchestrator.scheduler import Scheduler
    from web import create_app, local_url, start_site

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # Runs left unfinished are resumed only once the bot can deliver their messages.
    async with Store(settings.db_path, command="service") as store, Orchestrator(settings, store, resume=False) as orch:
        library = DagLibrary(settings, store)
        for name, problems in (await library.sync_folder()).items():
            log.warning("%s was not loaded: %s", settings.dags_dir / name, "; ".join(problems))
        scheduler = Scheduler(settings, store, orch, library)
        app = create_app(settings, orch, library, store)
        bot = TaskFlowBot(settings, orch, library, scheduler, store) if settings.telegram_bot_token else None
        if bot is None:
            log.info("the Telegram bot is off (TELEGRAM_BOT_TOKEN is not set)")
        else:
            _watch_bot(app, bot)
            await bot.start()
        orch.resumed = await orch.resume_unfinished()
        if bot is not None:
            await bot.notify_resumed(orch.resumed)
        runner = await start_site(app, settings)
        store.owner.announce(local_url(runner, settings))  # other commands hand their runs to it here
        supervisor = _Supervisor(stop)
        supervisor.start(library.watch(), "dags-watcher")
        supervisor.start(scheduler.run_forever(), "scheduler")
        retention = Retention(settings, orch, store)
        retention.attach()
        supervisor.start(retention.run_forever(), "retention")
        tune_gc()  # start-up's objects out of the collector's way, and fewer young collections
        log.info("TaskFlow is up (the web server's line above says where)")
        await stop.wait()
        log.info("shutting down; unfinished runs resume at the next start")
        await supervisor.stop()
        retention.detach()
        await retention.close()
        store.owner.announce(None)  # commands no longer hand their work to this service
        await runner.cleanup()
        if bot is not None:
            await bot.stop()


def _watch_bot(app: web.Application, bot: TaskFlowBot) -> None:
    """The bot's updates counted in the app's metrics, its health among the checks, its webhook route served."""
    from bot.metrics import CountUpdates
    from web.keys import METRICS, PROBES

    bot.dispatcher.update.outer_middleware(CountUpdates(app[METRICS].bot_updates))

    async def telegram(_: web.Application) -> str | None:
        return bot.health()

    app[PROBES]["telegram"] = telegram
    if bot.webhook is not None and bot.settings.webhook_path:
        # aiogram's handler checks X-Telegram-Bot-Api-Secret-Token; outside /api, so no API token is asked.
        app.router.add_post(bot.settings.webhook_path, bot.webhook.handle)


class _Supervisor:
    """Named background tasks; one that dies unexpectedly is logged and stops the service."""

    def __init__(self, stop: asyncio.Event) -> None:
        self._stop = stop
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._on_done)
        self._tasks.append(task)

    def _on_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s died", task.get_name(), exc_info=task.exception())
            self._stop.set()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


# -- sub-commands ---------------------------------------------------------------------------


def _read(path: str, limit: int) -> bytes:
    file = Path(path)
    if not file.is_file():
        raise TaskFlowError(f"{path}: no such file")
    if file.stat().st_size > limit:
        raise ConfigError([Problem("", f"file is larger than {limit} bytes")], source=path)
    return file.read_bytes()


async def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    """Run one DAG in the foreground with a live progress display (by the service, if it owns the data)."""
    from orchestrator.console import watch

    raw = _read(args.file, settings.max_config_bytes)
    config = parse_config(raw, source=args.file, max_tasks=settings.max_tasks, allow_shell=settings.allow_shell)
    params = _params(args.params)
    console = Console(stderr=True)
    async with _owner(settings, "run") as orch:
        if isinstance(orch, ServiceClient):
            console.print(Text(f"the service at {orch.url} owns {settings.db_path}: the run is handed to it"))
            run_id = await orch.submit(raw, params)
            return await _follow(orch, run_id, console, args.progress)
        tune_gc()
        run_id = await orch.submit(config, trigger="cli", owner="cli", params=params)
        report = await watch(orch.report, run_id, console) if args.progress else await orch.wait(run_id)
    return _finish(report, console)


def _params(words: list[str]) -> dict[str, Any] | None:
    """``-p NAME=value`` options (a value is JSON when it parses, else text)."""
    try:
        return dict(parse_assignment(word) for word in words) or None
    except ValueError as exc:
        raise TaskFlowError(f"-p {exc}") from None


@contextlib.asynccontextmanager
async def _owner(settings: Settings, command: str) -> AsyncIterator[Orchestrator | ServiceClient]:
    """This process's own orchestrator, or a client of the service that owns the database."""
    store = Store(settings.db_path, command=command)
    holder = await _open_or_find_the_service(store)
    if holder is not None:
        async with ServiceClient(holder, settings.api_token, settings.runs_dir) as client:
            yield client
        return
    try:
        # resume=False: a foreground command finishes its own run, not what a stopped service left.
        async with Orchestrator(settings, store, resume=command == "resume") as orch:
            yield orch
    finally:
        await store.close()


async def _open_or_find_the_service(store: Store) -> str | None:
    """Open the store; or, if a service owns it, that service's URL (waiting while it starts)."""
    deadline = asyncio.get_running_loop().time() + _SERVICE_START_S
    while True:
        try:
            await store.open()
            return None
        except DatabaseInUseError as exc:
            holder = exc.holder
            if holder is not None and holder.url is not None:
                return holder.url
            starting = holder is not None and holder.command == "service"
            if not starting or asyncio.get_running_loop().time() > deadline:
                raise
        await asyncio.sleep(_POLL_S)


async def _follow(client: ServiceClient, run_id: int, console: Console, progress: bool) -> int:
    """Follow a run the service executes until it ends, as a local run is followed."""
    from orchestrator.console import watch

    if progress:
        report = await watch(client.report, run_id, console)
    else:
        report = await client.report(run_id)
        while not report.run.finished:
            await asyncio.sleep(_POLL_S)
            report = await client.report(run_id)
    return _finish(report, console)


def _finish(report: RunReport, console: Console) -> int:
    from orchestrator.console import RUN_STYLE, report_table

    console.print(report_table(report))
    console.print(f"run id: {report.run.run_id}")
    console.print(Text.assemble("state: ", (report.state, RUN_STYLE.get(report.state, ""))))
    if report.run.error:
        console.print(Text(f"error: {report.run.error}"))  # Text: a task's error is never read as markup
    console.print(Text(f"archive: {report.archive}"))
    print(json.dumps({"run_id": report.run.run_id, "state": report.state, "archive": str(report.archive)}))
    return 0 if report.state == RunState.SUCCESS else 1


async def cmd_validate(settings: Settings, args: argparse.Namespace) -> int:
    """Validate a DAG config file and print the report."""
    raw = _read(args.file, settings.max_config_bytes)
    config = parse_config(raw, source=args.file, max_tasks=settings.max_tasks, allow_shell=settings.allow_shell)
    print(f"{args.file} is valid: DAG {config.dag_id!r} with {len(config.tasks)} task(s)")
    return 0


async def cmd_schema(settings: Settings, args: argparse.Namespace) -> int:
    """Print the JSON Schema of a DAG config."""
    print(json.dumps(config_schema(), indent=2))
    return 0


async def cmd_examples(settings: Settings, args: argparse.Namespace) -> int:
    """Print the path of each example DAG shipped with TaskFlow."""
    for path in sorted(EXAMPLES.glob("*.json")):
        print(path)
    return 0


async def cmd_resume(settings: Settings, args: argparse.Namespace) -> int:
    """Finish every run a stopped service left unfinished, then exit."""
    async with _owner(settings, "resume") as orch:
        if isinstance(orch, ServiceClient):
            print(f"the service at {orch.url} owns {settings.db_path} and resumes unfinished runs itself")
            return 0
        if not orch.resumed:
            print("no unfinished runs")
            return 0
        reports = [await orch.wait(run_id) for run_id in orch.resumed]
    for report in reports:
        print(f"run {report.run.run_id} ({report.run.dag_id}): {report.state}, archive {report.archive}")
    return 0 if all(r.state == RunState.SUCCESS for r in reports) else 1


async def cmd_rerun(settings: Settings, args: argparse.Namespace) -> int:
    """Re-run a failed run from its failure, in the foreground (by the service, if it owns the data)."""
    console = Console(stderr=True)
    async with _owner(settings, "rerun") as orch:
        if isinstance(orch, ServiceClient):
            return await _follow(orch, await orch.rerun(args.run_id), console, progress=False)
        run_id = await orch.rerun(args.run_id)
        report = await orch.wait(run_id)
    return _finish(report, console)


async def cmd_import_4diac(settings: Settings, args: argparse.Namespace) -> int:
    """Turn a 4diac file (or a project ZIP) into a DAG config (printed, or written with -o)."""
    from orchestrator.fourdiac import CLI_HINTS, AppChoiceError, TypeLibrary, import_upload, load_mapping, summarised

    mapping = load_mapping(args.map) if args.map else None
    library = TypeLibrary.from_dir(args.lib) if args.lib else None
    limit = MAX_4DIAC_ZIP_BYTES if args.file.lower().endswith(".zip") else MAX_XML_BYTES
    data = _read(args.file, limit)
    try:
        result = import_upload(
            data, filename=Path(args.file).name, app=args.app, mapping=mapping, library=library, hints=CLI_HINTS
        )
    except AppChoiceError as exc:
        raise exc.with_hint("pass --app NAME") from None
    except ConfigError as exc:
        if args.all_problems:
            raise
        raise summarised(exc, "pass --all-problems to list each one") from None
    text = json.dumps(result.config.model_dump(mode="json", exclude_defaults=True), indent=2, ensure_ascii=False)
    if args.output:
        try:
            await asyncio.to_thread(Path(args.output).write_text, text + "\n", encoding="utf-8")
        except OSError as exc:  # a missing folder, no permission: the user's to fix, not a traceback
            raise TaskFlowError(f"cannot write {args.output}: {exc.strerror or exc}") from None
        print(f"wrote {args.output}: DAG {result.config.dag_id!r} with {len(result.config.tasks)} task(s)")
    else:
        print(text)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if result.schedule:
        print(f"suggested schedule (from E_CYCLE): {result.schedule}", file=sys.stderr)
    return 0


async def cmd_cleanup(settings: Settings, args: argparse.Namespace) -> int:
    """Delete ended runs as the retention settings (or --older-than) say, and print what was freed."""
    from orchestrator.retention import clean, limits_of, parse_age

    try:
        keep_days = parse_age(args.older_than) if args.older_than else None
    except ValueError as exc:
        raise TaskFlowError(str(exc)) from None
    async with Store(settings.db_path, command="cleanup") as store:
        limits = await limits_of(settings, store, keep_days=keep_days)
        if not limits.any:
            print(
                "nothing to delete: no limit is set (TASKFLOW_KEEP_DAYS, TASKFLOW_KEEP_RUNS, keep_runs, --older-than)"
            )
            return 0
        freed = await clean(settings, store, limits, dry_run=args.dry_run)
    print(freed.describe())
    if freed.run_ids:
        print("runs: " + " ".join(map(str, freed.run_ids)))
    return 0


Command = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="TaskFlow: run JSON DAGs from Telegram, web, CLI.")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="start the service (the default)")
    run = sub.add_parser("run", help="run one DAG in the foreground")
    run.add_argument("file")
    run.add_argument(
        "-p", "--param", dest="params", action="append", default=[], metavar="NAME=VALUE",
        help="a value for one of the DAG's params (JSON when it parses, else text); repeat for more",
    )  # fmt: skip
    run.add_argument("--no-progress", dest="progress", action="store_false", help="no live display")
    run.set_defaults(func=cmd_run)
    validate = sub.add_parser("validate", help="validate a DAG config file")
    validate.add_argument("file")
    validate.set_defaults(func=cmd_validate)
    sub.add_parser("schema", help="print the config's JSON Schema").set_defaults(func=cmd_schema)
    sub.add_parser("examples", help="list the example DAGs shipped with TaskFlow").set_defaults(func=cmd_examples)
    sub.add_parser("resume", help="finish runs a stopped service left unfinished").set_defaults(func=cmd_resume)
    rerun = sub.add_parser("rerun", help="re-run a failed run from its failure")
    rerun.add_argument("run_id", type=int)
    rerun.set_defaults(func=cmd_rerun)
    cleanup = sub.add_parser("cleanup", help="delete old runs (their rows, folders and ZIPs)")
    cleanup.add_argument("--older-than", metavar="AGE", help="runs that ended longer ago than this (30d, 12h, 2w)")
    cleanup.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    cleanup.set_defaults(func=cmd_cleanup)
    imp = sub.add_parser("import-4diac", help="turn a 4diac .sys/.fbt/.sub file (or a project .zip) into a DAG config")
    imp.add_argument("file")
    imp.add_argument("--lib", help="a folder of 4diac type files (.sub, .fbt) that typed sub-apps are expanded from")
    imp.add_argument("--app", help="the application to import when the file has several")
    imp.add_argument("--map", help="a JSON file extending the FB type → operation table")
    imp.add_argument("--all-problems", action="store_true", help="list every problem, not a summary by kind")
    imp.add_argument("-o", "--output", help="write the config here instead of printing it")
    imp.set_defaults(func=cmd_import_4diac)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = _parser().parse_args(argv)
    func: Command | None = getattr(args, "func", None)
    # The service logs what it does; a foreground command shows its own display instead.
    level = logging.INFO if func is None else logging.WARNING
    try:
        settings = Settings()
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            print(f"setting {'.'.join(map(str, err['loc']))}: {err['msg']}", file=sys.stderr)
        return 2
    setup_logging(level, settings.log_format)
    try:
        if func is None:
            asyncio.run(serve(settings))
            return 0
        code = asyncio.run(func(settings, args))
        sys.stdout.flush()  # here, so a reader gone away is caught below, not at exit
        return code
    except BrokenPipeError:
        # The reader went away (`taskflow schema | head`): stop quietly, as a command killed by SIGPIPE does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        return 128 + signal.SIGPIPE
    except ConfigError as exc:
        print(exc.report(), file=sys.stderr)
        return 1
    except TaskFlowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
