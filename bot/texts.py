"""Everything the bot says, in one place. Messages use Telegram's HTML parse mode.

Every piece of text that comes from a user, a config or an error goes through ``esc`` (or ``code``/
``pre``) before it is put into a message, so a ``<`` in a task id can never break the markup.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from orchestrator.records import DagRecord, RunRecord, ScheduleRecord, TaskRecord
from orchestrator.scheduler import NOTIFY_EVERY, NOTIFY_FAILURES, notify_of, trigger_of
from orchestrator.states import RunState, TaskState

MESSAGE_LIMIT = 4096  # Telegram's limit for a message's text
CAPTION_LIMIT = 1024  # ... and for a document's caption
ERROR_LIMIT = 300  # errors are cut to this in compact views
PROGRESS_LINES = 30  # task lines shown in a progress message; the rest is summed up

COMMANDS: tuple[tuple[str, str], ...] = (
    ("dags", "List DAGs"),
    ("run", "Run a DAG: /run <dag_id> [name=value ...]"),
    ("status", "A run's status: /status [run_id]"),
    ("runs", "Recent runs"),
    ("cancel", "Cancel a run: /cancel <run_id>"),
    ("archive", "A run's ZIP: /archive <run_id>"),
    ("schedule", "Schedule a DAG: /schedule <dag_id> <cron | every 15m | at …>"),
    ("schedules", "List schedules"),
    ("unschedule", "Delete a schedule: /unschedule <id>"),
    ("notify", "Which runs of a schedule to tell: /notify <id> every|failures|none"),
    ("pause", "Pause a schedule: /pause <id>"),
    ("resume", "Resume a schedule: /resume <id>"),
    ("filename", "Change a task's output filename"),
    ("help", "What this bot can do"),
)

TASK_ICONS = {
    TaskState.PENDING: "▫️",
    TaskState.QUEUED: "🕓",
    TaskState.RUNNING: "⏳",
    TaskState.UP_FOR_RETRY: "🔁",
    TaskState.SUCCESS: "✅",
    TaskState.FAILED: "❌",
    TaskState.UPSTREAM_FAILED: "⛔",
    TaskState.CANCELLED: "🚫",
}
TASK_WORDS = {
    TaskState.PENDING: "waiting",
    TaskState.QUEUED: "queued",
    TaskState.RUNNING: "running",
    TaskState.UP_FOR_RETRY: "retry",
    TaskState.SUCCESS: "done",
    TaskState.FAILED: "failed",
    TaskState.UPSTREAM_FAILED: "upstream failed",
    TaskState.CANCELLED: "cancelled",
}
RUN_ICONS = {
    RunState.QUEUED: "🕓",
    RunState.RUNNING: "⏳",
    RunState.SUCCESS: "✅",
    RunState.FAILED: "❌",
    RunState.CANCELLED: "🚫",
}


# -- building blocks ----------------------------------------------------------------------------


def esc(value: object) -> str:
    """Text safe to put in an HTML message."""
    return html.escape(str(value), quote=False)


def code(value: object) -> str:
    """Inline monospace."""
    return f"<code>{esc(value)}</code>"


def pre(value: object) -> str:
    """A monospace block."""
    return f"<pre>{esc(value)}</pre>"


def cut(text: str, limit: int = ERROR_LIMIT) -> str:
    """``text`` shortened to ``limit`` characters (before escaping)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def duration(seconds: float | None) -> str:
    """``0.4s``, ``12s``, ``3m 05s``, ``2h 03m``."""
    if seconds is None:
        return "–"
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def when(moment: datetime | float | None, tz: ZoneInfo) -> str:
    """A time as people read it, in the service's timezone."""
    if moment is None:
        return "–"
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, tz)
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


def run_link(public_url: str, run_id: int) -> str:
    """The status page of a run."""
    return f"{public_url}/runs/{run_id}"


# -- access and help ----------------------------------------------------------------------------

HELP = (
    "<b>TaskFlow</b> runs DAGs of tasks. What you can do here:\n\n"
    "/dags — the DAGs I know (tap one to run it)\n"
    "/run &lt;dag_id&gt; — start a run; I keep one message up to date and tell you how it ended\n"
    "/status [run_id] — a run's tasks (the latest runs without an id)\n"
    "/runs — recent runs\n"
    "/cancel &lt;run_id&gt; — cancel a run\n"
    "/archive &lt;run_id&gt; — the run's data as a ZIP\n"
    "/schedule &lt;dag_id&gt; &lt;when&gt; — run a DAG on a schedule; &lt;when&gt; is a cron expression "
    "(5 fields, optional 6th for seconds), <code>every 15m</code> or <code>at 2026-12-01 09:00</code>\n"
    "/schedules, /pause &lt;id&gt;, /resume &lt;id&gt;, /unschedule &lt;id&gt; — manage schedules\n"
    "/notify &lt;id&gt; every|failures|none — which runs of a schedule I tell you about\n"
    "/filename [&lt;dag_id&gt; &lt;task_id&gt; &lt;new_name&gt;] — change where a task saves its output\n\n"
    "Send a <code>.json</code> DAG config (or a 4diac <code>.sys</code>/<code>.fbt</code>/<code>.sub</code>/"
    "<code>.xml</code> file, or a <code>.zip</code> of a 4diac project with its type files and an optional "
    "<code>taskflow-map.json</code>) as a document to add or replace a DAG."
)


def welcome(first_name: str | None) -> str:
    """The answer to /start of an allowed user."""
    return f"Hi {esc(first_name or 'there')}! 👋\n\n{HELP}"


def no_access(user_id: int, username: str | None) -> str:
    """What a user who is not on the allow-list is told."""
    who = f" (@{esc(username)})" if username else ""
    return (
        f"⛔ You have no access to TaskFlow. Your Telegram id is {code(user_id)}{who}.\n"
        "Ask an admin to add it to TELEGRAM_ALLOWED_USERS."
    )


def registered_no_access(user_id: int, username: str | None) -> str:
    """/start of a user who is not allowed: registered for messages, but no commands."""
    return "I will deliver TaskFlow messages addressed to you here.\n\n" + no_access(user_id, username)


NO_ACCESS_SHORT = "⛔ You have no access to TaskFlow."
UNKNOWN_COMMAND = "I don't know that command. /help lists what I can do."
NOT_A_COMMAND = "Send a command (see /help) or a DAG config as a document."
INTERNAL_ERROR = "⚠️ Something went wrong on my side; it is in the service log. Please try again."


# -- usage --------------------------------------------------------------------------------------

USAGE_RUN_ID = "Give a run id, e.g. <code>/{command} 12</code>."
USAGE_SCHEDULE = (
    "Usage: <code>/schedule &lt;dag_id&gt; &lt;when&gt;</code>, e.g.\n"
    "<code>/schedule my_dag */15 * * * *</code>\n"
    "<code>/schedule my_dag 0 9 * * 1-5</code>\n"
    "<code>/schedule my_dag * * * * * */30</code> (6th field: seconds)\n"
    "<code>/schedule my_dag every 15m</code>\n"
    "<code>/schedule my_dag at 2026-12-01 09:00</code>\n"
    "<code>/schedule my_dag 0 7 * * * city=Paris</code> (params for its runs)"
)
USAGE_SCHEDULE_ID = "Give a schedule id, e.g. <code>/{command} 3</code> (see /schedules)."
USAGE_FILENAME = "Usage: <code>/filename &lt;dag_id&gt; &lt;task_id&gt; &lt;new_name&gt;</code>, or /filename to pick."


def usage_run_id(command: str) -> str:
    """How to give a run id to ``command``."""
    return USAGE_RUN_ID.format(command=command)


def usage_schedule_id(command: str) -> str:
    """How to give a schedule id to ``command``."""
    return USAGE_SCHEDULE_ID.format(command=command)


# -- DAGs ---------------------------------------------------------------------------------------


def no_dags(folder: object) -> str:
    """No DAG is known: say where they come from."""
    return (
        f"No DAGs yet. Send a <code>.json</code> config as a document to add one, or put it in {code(folder)} "
        "(TASKFLOW_DAGS_DIR) on the server."
    )


PICK_DAG_TO_RUN = "Which DAG shall I run?"


def dag_list(dags: Sequence[DagRecord], shown: int) -> str:
    """/dags."""
    lines = [f"<b>DAGs</b> ({len(dags)}):"]
    for dag in dags:
        tasks = len(dag.config.get("tasks", []))
        lines.append(f"• {code(dag.dag_id)} — {tasks} task(s), v{dag.version}")
    if shown < len(dags):
        lines.append(f"\nButtons for the first {shown}; run the others with /run &lt;dag_id&gt;.")
    else:
        lines.append("\nTap one to run it.")
    return "\n".join(lines)


def dag_saved(record: DagRecord, filename: str) -> str:
    """A config upload was accepted."""
    tasks = len(record.config.get("tasks", []))
    verb = "added" if record.version == 1 else f"replaced (now version {record.version})"
    return f"✅ DAG {code(record.dag_id)} {verb} from {esc(filename)}: {tasks} task(s)."


def imported(record: DagRecord, filename: str, schedule: str | None, notes: Iterable[str]) -> str:
    """A 4diac import was accepted."""
    lines = [dag_saved(record, filename)]
    notes = list(notes)
    if notes:
        lines.append("\nNotes:")
        lines += [f"• {esc(cut(n))}" for n in notes[:20]]
        if len(notes) > 20:
            lines.append(f"… and {len(notes) - 20} more")
    if schedule:
        lines.append(
            f"\nThe file suggests the schedule {code(schedule)}: "
            f"<code>/schedule {esc(record.dag_id)} {esc(schedule)}</code>"
        )
    return "\n".join(lines)


def config_invalid(report: str) -> str:
    """A validation report (ConfigError.report())."""
    return f"❌ {pre(report)}"


def config_invalid_caption(source: str, count: int) -> str:
    """Caption of a report too long for a message (sent as a file)."""
    return f"❌ {esc(source)} is invalid: {count} problem(s), listed in the attached report."


def unsupported_document(name: str) -> str:
    """A document of a kind the bot does not take."""
    return (
        f"I can't use {esc(name)}. Send a DAG config (<code>.json</code>), a 4diac file "
        "(<code>.sys</code>, <code>.fbt</code>, <code>.sub</code>, <code>.xml</code>) or a 4diac project "
        "as a <code>.zip</code>."
    )


def document_too_big(name: str, limit: int) -> str:
    """A document over the size limit."""
    return f"{esc(name)} is too big: the limit is {limit // 1024} KiB."


FOURDIAC_MISSING = "4diac import is not available in this installation."


# -- runs ---------------------------------------------------------------------------------------


def task_line(task_id: str, state: TaskState, seconds: float | None = None) -> str:
    """One compact line of a progress or status message."""
    tail = f" · {duration(seconds)}" if seconds is not None and state == TaskState.SUCCESS else ""
    return f"{TASK_ICONS.get(state, '•')} {esc(task_id)}{tail}"


def progress(run_id: int, dag_id: str, state: RunState, tasks: Sequence[tuple[str, TaskState, float | None]]) -> str:
    """The status message of a run, edited in place while it goes on."""
    done = sum(1 for _, s, _ in tasks if s == TaskState.SUCCESS)
    header = f"{RUN_ICONS.get(state, '•')} Run <b>#{run_id}</b> of {code(dag_id)} — {esc(state.value)}"
    lines = [header, f"{done}/{len(tasks)} task(s) done"]
    for task_id, task_state, seconds in tasks[:PROGRESS_LINES]:
        lines.append(task_line(task_id, task_state, seconds))
    if len(tasks) > PROGRESS_LINES:
        rest = tasks[PROGRESS_LINES:]
        counts = _count(s for _, s, _ in rest)
        lines.append(f"… {len(rest)} more: {counts}")
    lines.append(legend(s for _, s, _ in tasks))
    return "\n".join(lines)


def legend(states: Iterable[TaskState]) -> str:
    """One line saying what each task icon in a message means (only those it shows)."""
    shown = set(states)
    return "<i>" + " · ".join(f"{TASK_ICONS[s]} {TASK_WORDS[s]}" for s in TaskState if s in shown) + "</i>"


def _count(states: Iterable[TaskState]) -> str:
    tally: dict[TaskState, int] = {}
    for state in states:
        tally[state] = tally.get(state, 0) + 1
    return ", ".join(f"{TASK_ICONS.get(s, '•')}{n}" for s, n in tally.items())


def final(run: RunRecord, failed: TaskRecord | None, link: str) -> str:
    """The message sent when a run ends."""
    icon = RUN_ICONS.get(run.state, "•")
    verb = {RunState.SUCCESS: "succeeded", RunState.FAILED: "failed", RunState.CANCELLED: "was cancelled"}
    lines = [
        f"{icon} Run <b>#{run.run_id}</b> of {code(run.dag_id)} {verb.get(run.state, esc(run.state.value))}"
        f" in {duration(run.duration_s)}."
    ]
    if failed is not None:
        lines.append(f"Failed task: {code(failed.task_id)}")
        lines.append(f"Error: {esc(cut(failed.error or 'unknown error'))}")
    elif run.error:
        lines.append(f"Error: {esc(cut(run.error))}")
    lines.append(f'<a href="{esc(link)}">Status page</a>')
    return "\n".join(lines)


def status(run: RunRecord, tasks: Sequence[TaskRecord], tz: ZoneInfo, link: str) -> str:
    """/status <run_id>: the run and every task."""
    icon = RUN_ICONS.get(run.state, "•")
    lines = [
        f"{icon} Run <b>#{run.run_id}</b> of {code(run.dag_id)} — {esc(run.state.value)}",
        f"Started by {esc(run.trigger)}{' (' + esc(run.owner) + ')' if run.owner else ''}",
        f"Started {when(run.started_at or run.created_at, tz)}, ended {when(run.ended_at, tz)}"
        f" ({duration(run.duration_s)})",
    ]
    for task in tasks:
        line = task_line(task.task_id, task.state, task.duration_s)
        if task.attempts > 1:
            line += f" ({task.attempts} attempts)"
        if task.error and task.state in (TaskState.FAILED, TaskState.UP_FOR_RETRY):
            line += f" — {esc(cut(task.error, 200))}"
        lines.append(line)
    lines.append(f'<a href="{esc(link)}">Status page</a>')
    lines.append(legend(task.state for task in tasks))
    return "\n".join(lines)


def run_line(run: RunRecord, tz: ZoneInfo) -> str:
    """One run in a list."""
    icon = RUN_ICONS.get(run.state, "•")
    return (
        f"{icon} <b>#{run.run_id}</b> {code(run.dag_id)} — {esc(run.state.value)}, "
        f"{when(run.started_at or run.created_at, tz)} ({duration(run.duration_s)}) · {esc(run.trigger)}"
    )


def run_list(runs: Sequence[RunRecord], tz: ZoneInfo, title: str) -> str:
    """/runs and /status without an id."""
    if not runs:
        return "No runs yet. Start one with /run &lt;dag_id&gt;."
    return "\n".join([f"<b>{esc(title)}</b>", *(run_line(r, tz) for r in runs), "", "Details: /status &lt;run_id&gt;"])


def run_started(run_id: int, dag_id: str) -> str:
    """The first text of a run's status message, before any task moved."""
    return f"🕓 Run <b>#{run_id}</b> of {code(dag_id)} started."


def cancelling(run_id: int) -> str:
    """/cancel was accepted."""
    return f"🚫 Cancelling run <b>#{run_id}</b>…"


def rerunning(run_id: int) -> str:
    """A re-run from the failure started (plain text: it is a button's answer)."""
    return f"🔁 Re-running run #{run_id} from its failure."


def no_archive(run: RunRecord) -> str:
    """/archive of a run without a ZIP yet."""
    return f"Run #{run.run_id} has no archive yet (it is {esc(run.state.value)}); it is made when the run ends."


def archive_caption(run: RunRecord) -> str:
    """Caption of a run's ZIP."""
    return f"📦 Run <b>#{run.run_id}</b> of {code(run.dag_id)} — {esc(run.state.value)}"


def archive_too_big(run_id: int, size: int, link: str) -> str:
    """A ZIP over the Bot API's upload limit."""
    mib = size // (1024 * 1024)
    return f"The archive of run #{run_id} is {mib} MiB, too big for Telegram. Get it here: {esc(link)}"


def digest(lines: Sequence[str]) -> str:
    """The admins' message after a restart that resumed runs."""
    return "\n".join([f"♻️ TaskFlow restarted and resumed {len(lines)} unfinished run(s):", *lines])


def digest_line(run: RunRecord) -> str:
    """One resumed run in the digest."""
    return f"• <b>#{run.run_id}</b> {code(run.dag_id)} — {esc(run.state.value)} ({esc(run.trigger)})"


# -- schedules ----------------------------------------------------------------------------------


def spec_of(record: ScheduleRecord) -> str:
    """A stored schedule as a user writes it."""
    return trigger_of(record).spec


def schedule_made(record: ScheduleRecord, upcoming: Sequence[datetime], tz: ZoneInfo) -> str:
    """/schedule was accepted."""
    lines = [
        f"⏰ Schedule <b>#{record.schedule_id}</b>: {code(record.dag_id)} {code(spec_of(record))} ({esc(tz.key)}).",
        "Next runs:",
        *(f"• {when(t, tz)}" for t in upcoming),
        f"\n{notices(record)} /pause {record.schedule_id}, /unschedule {record.schedule_id}",
    ]
    return "\n".join(lines)


_NOTICES = {
    NOTIFY_EVERY: "I'll tell you how each run ends",
    NOTIFY_FAILURES: "I'll tell you only of runs that fail",
}


def notices(record: ScheduleRecord) -> str:
    """What the chat hears of a schedule's runs, and how to change it."""
    what = _NOTICES.get(notify_of(record), "I won't tell you of its runs")
    return f"{what} (/notify {record.schedule_id} every|failures|none)."


def started_by_schedule(schedule_id: int, record: ScheduleRecord | None) -> str:
    """The line of a final message naming the schedule that started the run."""
    if record is None:
        return f"⏰ Started by schedule #{schedule_id} (deleted since)."
    return f"⏰ Started by schedule <b>#{schedule_id}</b> {code(spec_of(record))}. {notices(record)}"


def schedule_line(record: ScheduleRecord, upcoming: Sequence[datetime], tz: ZoneInfo) -> str:
    """One schedule in /schedules."""
    if record.paused:
        state = "⏸ paused"
    elif upcoming:
        state = f"next {when(upcoming[0], tz)}"
    else:
        state = "done"
    last = f", last run #{record.last_run_id}" if record.last_run_id else ""
    told = f", tells {notify_of(record)}"
    return f"<b>#{record.schedule_id}</b> {code(record.dag_id)} {code(spec_of(record))} — {state}{last}{told}"


def schedule_list(lines: Sequence[str], tz: ZoneInfo) -> str:
    """/schedules."""
    if not lines:
        return "No schedules. Make one with /schedule &lt;dag_id&gt; &lt;when&gt;."
    return "\n".join([f"<b>Schedules</b> (times in {esc(tz.key)}):", *lines])


def schedule_paused(schedule_id: int) -> str:
    """/pause."""
    return f"⏸ Schedule #{schedule_id} paused. /resume {schedule_id} to start it again."


def schedule_resumed(record: ScheduleRecord, upcoming: Sequence[datetime], tz: ZoneInfo) -> str:
    """/resume."""
    nxt = f" Next run: {when(upcoming[0], tz)}." if upcoming else " It has no more fire times."
    return f"▶️ Schedule #{record.schedule_id} resumed.{nxt}"


USAGE_NOTIFY = (
    "Usage: <code>/notify &lt;id&gt; every|failures|none</code>: tell of every run of the schedule, "
    "of failed ones only, or of none (see /schedules)."
)


def notify_set(record: ScheduleRecord) -> str:
    """/notify was accepted."""
    return f"🔔 Schedule #{record.schedule_id}: {notices(record)}"


def schedule_removed(schedule_id: int) -> str:
    """/unschedule."""
    return f"🗑 Schedule #{schedule_id} deleted."


def schedule_failed(record: ScheduleRecord, message: str) -> str:
    """A schedule came due but could not start its run."""
    return f"⚠️ Schedule <b>#{record.schedule_id}</b> ({code(record.dag_id)}) could not start a run: {esc(cut(message))}"


# -- filenames ----------------------------------------------------------------------------------

PICK_DAG_FOR_FILENAME = "Whose task's filename shall I change? Pick the DAG:"
FILENAME_ABORTED = "OK, nothing changed."
FILENAME_PROMPT_GONE = "This question has ended already."


def pick_task(dag_id: str) -> str:
    """Second step of the filename flow."""
    return f"DAG {code(dag_id)}: pick the task (the file it saves its output as is shown):"


def no_output_tasks(dag_id: str) -> str:
    """A DAG none of whose tasks writes an output file."""
    return f"No task of {code(dag_id)} writes an output file: there is no filename to change."


def ask_filename(dag_id: str, task_id: str, current: str, chosen: bool) -> str:
    """Third step of the filename flow."""
    now = code(current) if chosen else f"{code(current)} (the default)"
    return (
        f"Task {code(task_id)} of {code(dag_id)} saves its output as {now}.\n"
        "Send the new file name (a plain name like <code>report.json</code>), or tap Cancel (or send /cancel)."
    )


def filename_prompt_ended(command: str) -> str:
    """A pending filename question that another command ended."""
    return f"⏹ Ended by {esc(command)}: nothing changed. /filename to start again."


def filename_prompt_answered(dag_id: str, task_id: str, filename: str) -> str:
    """The filename question, once answered."""
    return f"Task {code(task_id)} of {code(dag_id)}: saved as {code(filename)}."


def filename_changed(dag_id: str, task_id: str, filename: str) -> str:
    """The filename was changed and saved."""
    return (
        f"✅ Task {code(task_id)} of {code(dag_id)} now saves its output as {code(filename)}. "
        "The next runs use it; the previous config is kept."
    )
